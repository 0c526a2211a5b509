// The raster page's map: georeg's own XYZ tiles of the raster (no base map from another host), its footprint
// from extent.geojson, and a click that samples every band at that point (GET /datasets/{id}/sample).
//
// Across the antimeridian the footprint comes split at 180° (a MultiPolygon); its western part is shifted by
// +360° so the raster is drawn and framed as one piece (e.g. 170°..190°); Leaflet wraps the tile columns and a
// click is wrapped back into -180..180 before sampling.
(function () {
  "use strict";
  const element = document.getElementById("map");
  if (!element || !window.L) return;
  const id = element.dataset.id;
  const base = element.dataset.base || "";
  const wgs84 = JSON.parse(element.dataset.bounds || "null");
  const crosses = Array.isArray(wgs84) && wgs84[0] !== null && wgs84[0] > wgs84[2];
  const out = document.getElementById("sample");

  const map = L.map(element, { worldCopyJump: false, attributionControl: false });
  map.getContainer().setAttribute("tabindex", "0");

  function shift(coordinates) {
    if (typeof coordinates[0] === "number") {
      return crosses && coordinates[0] < 0 ? [coordinates[0] + 360, coordinates[1]] : coordinates;
    }
    return coordinates.map(shift);
  }

  function boundsOf(box) {
    const [minx, miny, maxx, maxy] = box;
    return L.latLngBounds([miny, minx], [maxy, crosses ? maxx + 360 : maxx]);
  }

  function show(nodes) {
    out.replaceChildren(...nodes);
  }

  function paragraph(text, className) {
    const p = document.createElement("p");
    p.textContent = text;
    if (className) p.className = className;
    return p;
  }

  async function sample(latlng) {
    const point = latlng.wrap();
    const lon = Math.round(point.lng * 1e6) / 1e6;
    const lat = Math.round(point.lat * 1e6) / 1e6;
    show([paragraph(`Reading ${lat}, ${lon}…`, "hint")]);
    try {
      const response = await fetch(`${base}/datasets/${encodeURIComponent(id)}/sample?lon=${lon}&lat=${lat}`);
      const body = await response.json().catch(() => ({}));
      if (response.status === 404 && body.code === "point_outside") {
        show([paragraph(`No value at ${lat}, ${lon}: the point is outside the raster.`)]);
        return;
      }
      if (!response.ok) {
        show([paragraph(`Could not read the value: ${body.error || response.status}`, "failed")]);
        return;
      }
      const list = document.createElement("dl");
      list.className = "values";
      const values = body.values || [];
      for (const band of values) {
        const term = document.createElement("dt");
        term.textContent = `Band ${band.band}${band.description ? ` (${band.description})` : ""}`;
        const data = document.createElement("dd");
        data.textContent = band.value === null ? "no data" : `${band.value}${band.units ? ` ${band.units}` : ""}`;
        list.append(term, data);
      }
      show([paragraph(`At ${lat}, ${lon}:`), list]);
      const summary = values.map(v => `Band ${v.band}: ${v.value === null ? "no data" : v.value}`).join("; ");
      L.popup().setLatLng(latlng).setContent(summary || "no band").openOn(map);
    } catch (error) {
      show([paragraph(`Could not read the value: ${error.message}`, "failed")]);
    }
  }

  let frame = null;
  if (Array.isArray(wgs84) && wgs84.every(v => typeof v === "number")) {
    frame = boundsOf(wgs84);
    map.fitBounds(frame, { padding: [20, 20] });
  } else {
    map.setView([0, 0], 1);
  }
  // Tiles only where the raster is (georeg answers 404 outside it). Leaflet checks a tile against `bounds` after
  // wrapping the tile into -180..180, so a raster across 180° gets two layers: its eastern and its western part.
  const url = `${base}/datasets/${encodeURIComponent(id)}/tiles/{z}/{x}/{y}.png`;
  const parts = !frame ? [undefined]
    : crosses ? [L.latLngBounds([wgs84[1], wgs84[0]], [wgs84[3], 180]), L.latLngBounds([wgs84[1], -180], [wgs84[3], wgs84[2]])]
      : [frame];
  for (const bounds of parts) {
    L.tileLayer(url, { maxZoom: 22, maxNativeZoom: 18, bounds, keepBuffer: 1 }).addTo(map);
  }

  fetch(`${base}/datasets/${encodeURIComponent(id)}/extent.geojson`)
    .then(response => (response.ok ? response.json() : null))
    .then(feature => {
      if (!feature || !feature.geometry) return;
      const shifted = { ...feature, geometry: { ...feature.geometry, coordinates: shift(feature.geometry.coordinates) } };
      const layer = L.geoJSON(shifted, { style: { color: "#d1460f", weight: 2, fill: false }, interactive: false }).addTo(map);
      if (!frame) map.fitBounds(layer.getBounds(), { padding: [20, 20] });
    })
    .catch(() => {});

  map.on("click", event => sample(event.latlng));
  window.georegMap = map;  // for scripts and tests
  element.dataset.ready = "true";
})();
