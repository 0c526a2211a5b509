"""Built-in SLD 1.0 styles for registered rasters, with contrast limits from the registry's band statistics.

Each style is a ``StyledLayerDescriptor`` (SLD 1.0.0) with one ``NamedLayer`` (``Name`` = the dataset id) and one
``UserStyle`` (``Name`` = the style id) holding one ``FeatureTypeStyle/Rule/RasterSymbolizer``:

* single-band styles (``grayscale``, ``s1-amplitude-db``, ``dem-terrain``, ``viridis``) select band 1 with
  ``ChannelSelection/GrayChannel`` and colour it with a ``ColorMap type="ramp"`` of ``ColorMapEntry`` elements;
* ``rgb`` (3+ bands) maps bands 1/2/3 to ``RedChannel``/``GreenChannel``/``BlueChannel``, each with its own
  ``ContrastEnhancement/Normalize`` stretched between that band's 2nd and 98th percentiles.

The limits come from ``Raster.stats`` (computed at registration from a decimated read, nodata excluded), so a style
is specific to one dataset; nothing is read from the raster file here. Everything in this module is pure: it takes
the ``Raster`` record and returns bytes or lists.

How servers read ``ColorMap`` quantities (georeg targets **GeoServer**)
----------------------------------------------------------------------
* **GeoServer** (GeoTools): ``type="ramp"`` (GeoServer's default; the ``type`` attribute itself is a GeoServer
  extension of SLD 1.0) interpolates colour *and* entry opacity linearly between consecutive quantities. Values at
  or below the first quantity take the first entry's colour and opacity, values at or above the last take the last
  entry's. ``ColorMapEntry/@opacity`` is honoured, so an entry at the nodata value with ``opacity="0"`` makes nodata
  transparent.
* **MapServer** (``msSLDParseRasterSymbolizer``) turns each pair of consecutive entries into a class
  ``[pixel] >= q(i) AND [pixel] < q(i+1)`` painted *flat* in entry i's colour, plus a class ``[pixel] = q(last)`` for
  the last entry: no interpolation (a ramp degrades into steps, i.e. GeoServer's ``type="intervals"``), ``type``
  and per-entry ``opacity`` are ignored, values outside [first, last] are not drawn, and ``ChannelSelection`` /
  ``ContrastEnhancement`` are not read. A quantity written without a ``.`` is read with ``atoi``, which is why
  quantities here are always written positionally (never ``1e-05``).

georeg writes for GeoServer's interpretation. Two consequences:

* every ramp is a list of stops whose quantities strictly increase; intermediate stops are evenly spaced so the
  piecewise-linear interpolation reproduces the intended curve (``s1-amplitude-db`` uses several stops precisely
  because GeoServer interpolates linearly *in amplitude*);
* nodata (when the raster has a finite one) gets a transparent entry at its value, flanked by *guard* entries one
  step below and above it (1 for integer rasters, ``max(|nodata|, 1) * 1e-6`` for float rasters) carrying the ramp's
  colour at that point, fully opaque. Without the guards GeoServer would interpolate opacity between the nodata
  entry and the first real stop, so valid pixels between nodata and the low limit (e.g. the 2 % below p2) would be
  partly transparent, and valid pixels beyond the nodata value would be clamped to its transparent entry. A guard
  is left out when the raster's data type cannot hold values on that side (e.g. below nodata 0 in a uint16 band) or
  when it would not fall strictly between its neighbours. NaN nodata gets no entry (GeoServer masks NaN itself).

``rgb`` limits are written as GeoServer ``VendorOption``s inside ``Normalize`` (``algorithm`` =
``StretchToMinimumMaximum``, ``minValue`` = p2, ``maxValue`` = p98); a plain SLD 1.0 reader ignores them and applies
an ordinary ``Normalize``. Nodata in ``rgb`` is left to the server (GeoServer masks the coverage's nodata).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
from lxml import etree
from pydantic import BaseModel, Field

from georeg.core.errors import NotFound
from georeg.core.models import Raster

SLD_MEDIA_TYPE = "application/vnd.ogc.sld+xml"
SLD_NS = "http://www.opengis.net/sld"
OGC_NS = "http://www.opengis.net/ogc"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{SLD_NS} http://schemas.opengis.net/sld/1.0.0/StyledLayerDescriptor.xsd"
NSMAP = {"sld": SLD_NS, "ogc": OGC_NS, "xlink": XLINK_NS, "xsi": XSI_NS}

# 9 samples of matplotlib's viridis at 0, 1/8, ..., 1.
VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21908c", "#27ad81", "#5dc863", "#aadc32", "#fde725"]
# dem-terrain: water below sea level, land from green lowlands through tan and brown to white peaks.
TERRAIN_WATER = ["#08306b", "#4292c6"]
TERRAIN_LAND = ["#1a9641", "#a6d96a", "#e6d49a", "#8c6239", "#ffffff"]
S1_DB_STOPS = 9
S1_DEFAULT_DB = (-25.0, 5.0)
S1_DYNAMIC_RANGE_DB = 30.0
MAX_ECHOED_ID = 64


@dataclass(frozen=True)
class Stop:
    """One ``ColorMapEntry``; ``label`` None leaves the attribute out (guard entries)."""

    quantity: float
    color: str
    opacity: float = 1.0
    label: str | None = None


@dataclass(frozen=True)
class StyleInfo:
    id: str
    title: str
    default: bool


STYLE_TITLES = {
    "grayscale": "Grayscale (band 1, 2-98 % stretch)",
    "rgb": "RGB composite (bands 1/2/3, 2-98 % stretch per band)",
    "s1-amplitude-db": "Sentinel-1 amplitude in dB (band 1, gray)",
    "dem-terrain": "Terrain colour ramp (band 1, min to max)",
    "viridis": "Viridis (band 1, 2-98 % stretch)",
}


# ---------------------------------------------------------------------------------------------------- catalogue

def default_style(raster: Raster) -> str:
    """``rgb`` for a 3+ band uint8 raster (a true-colour image), ``grayscale`` otherwise."""
    return "rgb" if raster.band_count >= 3 and (raster.dtype or "").lower() == "uint8" else "grayscale"


def available_styles(raster: Raster) -> list[StyleInfo]:
    """The built-in styles that apply to this raster (``rgb`` only with 3+ bands)."""
    default = default_style(raster)
    return [StyleInfo(id=style_id, title=title, default=style_id == default)
            for style_id, title in STYLE_TITLES.items() if style_id != "rgb" or raster.band_count >= 3]


def style_url(dataset_id: str, style_id: str) -> str:
    return f"/styles/{quote(dataset_id, safe='')}/{quote(style_id, safe='')}.sld"


class StyleEntry(BaseModel):
    id: str
    title: str
    default: bool
    url: str = Field(description="the SLD document")


class StyleListing(BaseModel):
    dataset_id: str
    styles: list[StyleEntry]


def style_listing(raster: Raster) -> StyleListing:
    """The styles of ``GET /styles/{dataset_id}``."""
    return StyleListing(dataset_id=raster.public_id, styles=[
        StyleEntry(id=s.id, title=s.title, default=s.default, url=style_url(raster.public_id, s.id))
        for s in available_styles(raster)])


def _check_style(raster: Raster, style_id: str) -> StyleInfo:
    styles = available_styles(raster)
    names = [s.id for s in styles]
    for style in styles:
        if style.id == style_id:
            return style
    details = {"available_styles": names}
    if style_id == "rgb":
        raise NotFound(f"style 'rgb' needs at least 3 bands; dataset {raster.public_id!r} has {raster.band_count}. "
                       f"Available styles: {', '.join(names)}", code="style_not_available", details=details)
    shown = style_id if len(style_id) <= MAX_ECHOED_ID else style_id[:MAX_ECHOED_ID] + "..."
    raise NotFound(f"no style {shown!r} for dataset {raster.public_id!r}. Available styles: {', '.join(names)}",
                   code="style_not_found", details=details)


# ---------------------------------------------------------------------------------------------------- numbers

def number(value: float) -> str:
    """Shortest positional text that reads back as the same double (no exponent: MapServer reads '1e-05' as 1)."""
    return np.format_float_positional(float(value), trim="-")


def _label(value: float) -> str:
    return f"{value:.6g}"


def _is_integer_dtype(raster: Raster) -> bool:
    try:
        return np.issubdtype(np.dtype(raster.dtype), np.integer)
    except TypeError:
        return False


def _dtype_range(raster: Raster) -> tuple[float, float]:
    try:
        dtype = np.dtype(raster.dtype)
    except TypeError:
        return -math.inf, math.inf
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if np.issubdtype(dtype, np.floating):
        info = np.finfo(dtype)
        return float(info.min), float(info.max)
    return -math.inf, math.inf


def _band_stats(raster: Raster, band: int) -> dict:
    for entry in raster.stats or []:
        if isinstance(entry, dict) and entry.get("band") == band:
            return entry
    return {}


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def limits(raster: Raster, band: int = 1, low: str = "p2", high: str = "p98") -> tuple[float, float]:
    """(low, high) of a band from its statistics, strictly increasing.

    Without statistics (an all-nodata band) integer rasters fall back to the data type's range and float rasters to
    0..1; a constant band is widened by one step (1, or 0.1 % of the value for floats)."""
    stats = _band_stats(raster, band)
    lo, hi = _finite(stats.get(low)), _finite(stats.get(high))
    if lo is None or hi is None:
        lo, hi = _dtype_range(raster) if _is_integer_dtype(raster) else (0.0, 1.0)
    if hi <= lo:
        hi = lo + (1.0 if _is_integer_dtype(raster) else max(abs(lo), 1.0) * 1e-3)
    return lo, hi


def _spread(lo: float, hi: float, count: int) -> list[float]:
    """``count`` evenly spaced values from lo to hi, both ends exact."""
    values = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    values[0], values[-1] = lo, hi
    return values


# ---------------------------------------------------------------------------------------------------- colours

def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def _gray(level: float) -> str:
    return _hex((level, level, level))


def color_at(stops: list[Stop], value: float) -> str:
    """The colour GeoServer's ramp gives ``value``: clamped at the ends, linear in between."""
    if value <= stops[0].quantity:
        return stops[0].color
    if value >= stops[-1].quantity:
        return stops[-1].color
    for left, right in itertools.pairwise(stops):
        if left.quantity <= value <= right.quantity:
            t = (value - left.quantity) / (right.quantity - left.quantity)
            a, b = _rgb(left.color), _rgb(right.color)
            return _hex(tuple(x + (y - x) * t for x, y in zip(a, b, strict=False)))
    return stops[-1].color


# ---------------------------------------------------------------------------------------------------- ramps

def grayscale_stops(raster: Raster) -> list[Stop]:
    lo, hi = limits(raster)
    return [Stop(lo, "#000000", label=f"p2 {_label(lo)}"), Stop(hi, "#ffffff", label=f"p98 {_label(hi)}")]


def viridis_stops(raster: Raster) -> list[Stop]:
    lo, hi = limits(raster)
    values = _spread(lo, hi, len(VIRIDIS))
    labels = [f"p2 {_label(lo)}"] + [_label(v) for v in values[1:-1]] + [f"p98 {_label(hi)}"]
    return [Stop(q, color, label=label) for q, color, label in zip(values, VIRIDIS, labels, strict=False)]


def s1_db_range(raster: Raster) -> tuple[float, float]:
    """The dB window of ``s1-amplitude-db``: 20·log10 of the band's p2 and p98 amplitudes.

    Sentinel-1 GRD pixels are *amplitudes* (DN, uint16 in the SAFE measurement files, sometimes calibrated floats),
    and the customary display (MET Norway's quicklooks) is 20·log10(amplitude) stretched between low and high
    percentiles. Statistics only carry p2/p98, so the window is [20·log10(p2), 20·log10(p98)] dB. When p2 is not
    positive (zeros around the swath that are not flagged nodata) the window is the 30 dB below 20·log10(p98); when
    no positive statistics exist at all it is the fixed -25..5 dB of calibrated backscatter."""
    stats = _band_stats(raster, 1)
    p2, p98 = _finite(stats.get("p2")), _finite(stats.get("p98"))
    if p98 is None or p98 <= 0:
        return S1_DEFAULT_DB
    high = 20 * math.log10(p98)
    low = 20 * math.log10(p2) if p2 is not None and p2 > 0 else high - S1_DYNAMIC_RANGE_DB
    if high - low < 0.1:
        low = high - S1_DYNAMIC_RANGE_DB
    return low, high


def s1_amplitude_db_stops(raster: Raster) -> list[Stop]:
    """A gray ramp linear in dB over :func:`s1_db_range`, written as amplitude quantities.

    A ``ColorMap`` cannot take a logarithm: the quantities are the raster's own amplitude values A = 10^(dB/20) at
    nine dB levels evenly spaced over the window, each with the gray level that is linear in dB (black at the low
    end, white at the high end). GeoServer interpolates linearly in amplitude between neighbouring stops, a close
    piecewise-linear approximation of the dB curve; labels give the dB value of each stop."""
    low_db, high_db = s1_db_range(raster)
    levels = _spread(low_db, high_db, S1_DB_STOPS)
    amplitudes = [10 ** (db / 20) for db in levels]
    stats = _band_stats(raster, 1)
    for index, key in ((0, "p2"), (-1, "p98")):  # the ends are the statistics themselves, not a log/exp round trip
        value = _finite(stats.get(key))
        if value is not None and value > 0 and math.isclose(value, amplitudes[index], rel_tol=1e-9):
            amplitudes[index] = value
    return [Stop(amplitude, _gray(255 * index / (S1_DB_STOPS - 1)), label=f"{db:.1f} dB")
            for index, (amplitude, db) in enumerate(zip(amplitudes, levels, strict=False))]


def dem_terrain_stops(raster: Raster) -> list[Stop]:
    """A terrain ramp between the band's min and max.

    Land runs green, light green, tan, brown, white over [land start, max]. When the band reaches sea level
    (min <= 0 < max), light blue sits at 0 ("sea level"), dark blue at the minimum if it is below 0, and land starts
    at ``min(1, max/10)`` (a thin coastline band); otherwise land spans [min, max]. An all-negative band is water
    only (dark blue at min, light blue at max)."""
    lo, hi = limits(raster, low="min", high="max")
    if hi <= 0:
        return [Stop(lo, TERRAIN_WATER[0], label=f"min {_label(lo)}"),
                Stop(hi, TERRAIN_WATER[1], label=f"max {_label(hi)}")]
    stops: list[Stop] = []
    land_lo = lo
    if lo <= 0:
        if lo < 0:
            stops.append(Stop(lo, TERRAIN_WATER[0], label=f"min {_label(lo)}"))
        stops.append(Stop(0.0, TERRAIN_WATER[1], label="0 (sea level)"))
        land_lo = min(1.0, hi / 10)
    values = _spread(land_lo, hi, len(TERRAIN_LAND))
    labels = [_label(v) for v in values[:-1]] + [f"max {_label(hi)}"]
    if lo > 0:
        labels[0] = f"min {_label(lo)}"
    stops += [Stop(q, color, label=label) for q, color, label in zip(values, TERRAIN_LAND, labels, strict=False)]
    return stops


def with_nodata(raster: Raster, stops: list[Stop]) -> list[Stop]:
    """``stops`` plus a transparent entry at the raster's nodata value and opaque guards around it (see module doc)."""
    nodata = _finite(raster.nodata)
    if nodata is None:
        return stops
    step = 1.0 if _is_integer_dtype(raster) else max(abs(nodata), 1.0) * 1e-6
    dtype_min, dtype_max = _dtype_range(raster)
    # a stop within one step of nodata gives way to it; the guards keep the ramp's colours (from all the stops)
    kept = [s for s in stops if abs(s.quantity - nodata) >= step] or stops
    candidates = [Stop(nodata, color_at(stops, nodata), 0.0, "nodata")]
    if nodata - step >= dtype_min:
        candidates.append(Stop(nodata - step, color_at(stops, nodata - step)))
    if nodata + step <= dtype_max:
        candidates.append(Stop(nodata + step, color_at(stops, nodata + step)))
    merged = sorted(kept + candidates, key=lambda s: s.quantity)
    result: list[Stop] = []
    for stop in merged:  # a guard landing on a real stop is dropped (the stable sort puts the stop first)
        if not result or stop.quantity > result[-1].quantity:
            result.append(stop)
    return result


RAMPS = {
    "grayscale": grayscale_stops,
    "s1-amplitude-db": s1_amplitude_db_stops,
    "dem-terrain": dem_terrain_stops,
    "viridis": viridis_stops,
}


def color_map(raster: Raster, style_id: str) -> list[Stop]:
    """The ``ColorMapEntry`` list of a single-band style, nodata included."""
    return with_nodata(raster, RAMPS[style_id](raster))


# ---------------------------------------------------------------------------------------------------- XML

def _sld(tag: str) -> str:
    return f"{{{SLD_NS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, _sld(tag), attrs)
    if text is not None:
        element.text = text
    return element


def _abstract(raster: Raster, style_id: str) -> str:
    if style_id == "rgb":
        parts = []
        for band in (1, 2, 3):
            lo, hi = limits(raster, band)
            parts.append(f"band {band} {_label(lo)}..{_label(hi)}")
        return "Bands 1/2/3 as red/green/blue, each stretched between its 2nd and 98th percentiles: " + "; ".join(parts)
    if style_id == "s1-amplitude-db":
        low, high = s1_db_range(raster)
        return (f"Band 1 amplitude shown as 20*log10(amplitude) from {low:.2f} dB (black) to {high:.2f} dB (white); "
                "quantities are amplitudes.")
    if style_id == "dem-terrain":
        lo, hi = limits(raster, low="min", high="max")
        return f"Band 1 terrain colours from min {_label(lo)} to max {_label(hi)}."
    lo, hi = limits(raster)
    return f"Band 1 between its 2nd and 98th percentiles, {_label(lo)}..{_label(hi)}."


def _rgb_channels(symbolizer: etree._Element, raster: Raster) -> None:
    selection = _sub(symbolizer, "ChannelSelection")
    for band, channel in ((1, "RedChannel"), (2, "GreenChannel"), (3, "BlueChannel")):
        lo, hi = limits(raster, band)
        element = _sub(selection, channel)
        _sub(element, "SourceChannelName", str(band))
        normalize = _sub(_sub(element, "ContrastEnhancement"), "Normalize")
        _sub(normalize, "VendorOption", "StretchToMinimumMaximum", name="algorithm")
        _sub(normalize, "VendorOption", number(lo), name="minValue")
        _sub(normalize, "VendorOption", number(hi), name="maxValue")


def _ramp(symbolizer: etree._Element, raster: Raster, style_id: str) -> None:
    gray = _sub(_sub(symbolizer, "ChannelSelection"), "GrayChannel")
    _sub(gray, "SourceChannelName", "1")
    colormap = _sub(symbolizer, "ColorMap", type="ramp")
    for stop in color_map(raster, style_id):
        attrs = {"color": stop.color, "quantity": number(stop.quantity), "opacity": number(stop.opacity)}
        if stop.label is not None:
            attrs["label"] = stop.label
        _sub(colormap, "ColorMapEntry", **attrs)


def render_sld(raster: Raster, style_id: str) -> bytes:
    """The SLD 1.0 document of a built-in style; 404 ``style_not_found`` / ``style_not_available`` otherwise."""
    style = _check_style(raster, style_id)
    root = etree.Element(_sld("StyledLayerDescriptor"), nsmap=NSMAP, version="1.0.0")
    root.set(f"{{{XSI_NS}}}schemaLocation", SCHEMA_LOCATION)
    layer = _sub(root, "NamedLayer")
    _sub(layer, "Name", raster.public_id)
    user_style = _sub(layer, "UserStyle")
    _sub(user_style, "Name", style.id)
    _sub(user_style, "Title", style.title)
    _sub(user_style, "Abstract", _abstract(raster, style.id))
    if style.default:
        _sub(user_style, "IsDefault", "1")
    rule = _sub(_sub(user_style, "FeatureTypeStyle"), "Rule")
    _sub(rule, "Name", style.id)
    symbolizer = _sub(rule, "RasterSymbolizer")
    _sub(symbolizer, "Opacity", "1.0")
    if style.id == "rgb":
        _rgb_channels(symbolizer, raster)
    else:
        _ramp(symbolizer, raster, style.id)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
