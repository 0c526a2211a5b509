"""Synthetic but structurally real Sentinel SAFE products, written with rasterio, in the NBS archive layout.

* Sentinel-1 GRD (``1SDV`` -> VV + VH, ``1SDH`` -> HH + HV): ``manifest.safe``, ``annotation/*.xml`` with a
  geolocation grid, ``measurement/*.tiff`` (uint16 amplitude, no geotransform, georeferenced by GCPs in lon/lat)
  over a slightly curved, rotated swath near Svalbard, with a no-data (0) border like real GRD products.
* Sentinel-2 L2A (``MTD_MSIL2A.xml``, ``GRANULE/<g>/IMG_DATA/R10m|R20m/*_Bxx_10m|20m.jp2``) and L1C
  (``MTD_MSIL1C.xml``, ``GRANULE/<g>/IMG_DATA/*_Bxx.jp2``): JP2 bands written losslessly (``QUALITY=100``,
  ``REVERSIBLE=YES``) in UTM 33N, 20 m bands at half the 10 m size, a no-data (0) corner.

:func:`build_archive` lays out a whole archive root (zips, ``.SAFE`` directories, a broken zip, a product with
a missing band) as ``<PLATFORM>/<YYYY>/<MM>/<DD>/[IW|EW/]<PRODUCT>.zip``; the ``sentinel_archive`` fixture builds
one per test session. The builders have no pytest dependency so ``bench/`` reuses them at bigger sizes.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

S1_PRODUCT = "S1A_IW_GRDH_1SDV_20260115T052300_20260115T052325_012345_0ABCDE_1234"
S2_L2A_PRODUCT = "S2C_MSIL2A_20260111T105401_N0511_R051_T33WXR_20260111T130000"
S2_L1C_PRODUCT = "S2B_MSIL1C_20260112T105401_N0511_R051_T33WXR_20260112T120000"
S2_CRS = "EPSG:32633"
S2_ORIGIN = (500000.0, 8700000.0)
L2A_BANDS = {10: ("B02", "B03", "B04", "B08"), 20: ("B02", "B03", "B04", "B8A", "B11", "B12")}
L1C_BANDS = {10: ("B02", "B03", "B04", "B08"), 20: ("B8A", "B11", "B12")}
BAND_LEVELS = {"B02": 0.8, "B03": 0.9, "B04": 1.0, "B08": 1.6, "B8A": 1.5, "B11": 1.2, "B12": 0.7}
S1_POLARISATIONS = {"1SDV": ("VV", "VH"), "1SDH": ("HH", "HV"), "1SSV": ("VV",), "1SSH": ("HH",)}


# ---------------------------------------------------------------- Sentinel-1 GRD

def _s1_parts(product: str) -> dict:
    mission, mode, _, polarisation, start, stop, orbit, datatake, _ = product.split("_")
    return {"mission": mission, "mode": mode, "polarisation": polarisation, "start": start, "stop": stop,
            "orbit": orbit, "datatake": datatake}


def s1_swath_lonlat(cols: np.ndarray, rows: np.ndarray, *, width: int, height: int, spacing: float,
                    center: tuple[float, float] = (15.0, 78.0),
                    heading_deg: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of image positions on a rotated swath with a slight curvature (so a GCP polynomial is not exact)."""
    x = (np.asarray(cols, dtype="float64") - width / 2) * spacing
    y = (height / 2 - np.asarray(rows, dtype="float64")) * spacing
    theta = math.radians(heading_deg)
    east = x * math.cos(theta) - y * math.sin(theta)
    north = x * math.sin(theta) + y * math.cos(theta)
    east = east + 2e-6 * north**2
    lon = center[0] + east / (111_320.0 * math.cos(math.radians(center[1])))
    lat = center[1] + north / 110_950.0
    return lon, lat


def s1_gcps(*, width: int, height: int, spacing: float, steps: int = 11) -> list[GroundControlPoint]:
    rows, cols = np.meshgrid(np.linspace(0, height - 1, steps).round(), np.linspace(0, width - 1, steps).round(),
                             indexing="ij")
    lon, lat = s1_swath_lonlat(cols.ravel(), rows.ravel(), width=width, height=height, spacing=spacing)
    return [GroundControlPoint(row=float(r), col=float(c), x=float(x), y=float(y), z=0.0)
            for r, c, x, y in zip(rows.ravel(), cols.ravel(), lon, lat, strict=True)]


def s1_amplitude(width: int, height: int, *, seed: int, level: float = 1.0, border: float = 0.06) -> np.ndarray:
    """uint16 amplitudes: a smooth scene times gamma speckle, 0 (no data) in a border on both range edges."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype("float32")
    scene = 60 + 50 * np.sin(xx / max(width, 1) * 7.0) * np.cos(yy / max(height, 1) * 5.0) + 0.2 * xx * 256 / width
    speckle = rng.gamma(4.0, 0.25, size=(height, width)).astype("float32")
    data = np.clip(scene * speckle * level, 1, 65535).astype("uint16")
    edge = max(1, int(width * border))
    data[:, :edge] = 0
    data[:, width - edge // 2:] = 0
    return data


def _measurement_name(parts: dict, polarisation: str, index: int) -> str:
    return "-".join([parts["mission"].lower(), parts["mode"].lower(), "grd", polarisation.lower(),
                     parts["start"].lower(), parts["stop"].lower(), parts["orbit"], parts["datatake"].lower(),
                     f"{index:03d}"])


def _iso(stamp: str) -> str:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%S.000000")


def _annotation_xml(parts: dict, polarisation: str, gcps: list[GroundControlPoint], *, width: int, height: int,
                    spacing: float) -> str:
    points = "".join(
        f"<geolocationGridPoint><azimuthTime>{_iso(parts['start'])}</azimuthTime>"
        f"<slantRangeTime>5.3e-03</slantRangeTime><line>{int(p.row)}</line><pixel>{int(p.col)}</pixel>"
        f"<latitude>{p.y!r}</latitude><longitude>{p.x!r}</longitude><height>0</height>"
        f"<incidenceAngle>{30 + 15 * p.col / max(width - 1, 1):.4f}</incidenceAngle>"
        f"<elevationAngle>27.0</elevationAngle></geolocationGridPoint>"
        for p in gcps
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<product>'
        f"<adsHeader><missionId>{parts['mission']}</missionId><productType>GRD</productType>"
        f"<polarisation>{polarisation}</polarisation><mode>{parts['mode']}</mode><swath>{parts['mode']}</swath>"
        f"<startTime>{_iso(parts['start'])}</startTime><stopTime>{_iso(parts['stop'])}</stopTime>"
        f"<absoluteOrbitNumber>{int(parts['orbit'])}</absoluteOrbitNumber>"
        f"<missionDataTakeId>{int(parts['datatake'], 16)}</missionDataTakeId><imageNumber>001</imageNumber></adsHeader>"
        "<imageAnnotation><imageInformation>"
        f"<rangePixelSpacing>{spacing}</rangePixelSpacing><azimuthPixelSpacing>{spacing}</azimuthPixelSpacing>"
        f"<numberOfSamples>{width}</numberOfSamples><numberOfLines>{height}</numberOfLines>"
        "</imageInformation></imageAnnotation>"
        f'<geolocationGrid><geolocationGridPointList count="{len(gcps)}">{points}</geolocationGridPointList>'
        "</geolocationGrid></product>\n"
    )


def _s1_manifest(parts: dict, polarisations: tuple[str, ...], files: list[tuple[str, str]], footprint: str) -> str:
    pols = "".join(f"<s1sarl1:transmitterReceiverPolarisation>{p}</s1sarl1:transmitterReceiverPolarisation>"
                   for p in polarisations)
    objects = "".join(
        f'<dataObject ID="{escape(name.rsplit("/", 1)[-1])}" repID="{rep}">'
        '<byteStream mimeType="application/octet-stream">'
        f'<fileLocation locatorType="URL" href="./{escape(name)}"/></byteStream></dataObject>'
        for name, rep in files
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1" xmlns:safe="http://www.esa.int/safe/sentinel-1.0" '
        'xmlns:s1sarl1="http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1" '
        'xmlns:gml="http://www.opengis.net/gml" version="esa/safe/sentinel-1.0/sentinel-1/sar/level-1/standard/iwgrdh">'
        '<informationPackageMap><xfdu:contentUnit unitType="SAFE Archive Information Package" '
        f'textInfo="Sentinel-1 {parts["mode"]} Level-1 GRD Product"/></informationPackageMap><metadataSection>'
        '<metadataObject ID="platform" classification="DESCRIPTION" category="DMD"><metadataWrap><xmlData>'
        f"<safe:platform><safe:familyName>SENTINEL-1</safe:familyName><safe:number>{parts['mission'][-1]}</safe:number>"
        '<safe:instrument><safe:familyName abbreviation="SAR">Synthetic Aperture Radar</safe:familyName>'
        f"<safe:extension><s1sarl1:instrumentMode><s1sarl1:mode>{parts['mode']}</s1sarl1:mode></s1sarl1:instrumentMode>"
        "</safe:extension></safe:instrument></safe:platform></xmlData></metadataWrap></metadataObject>"
        '<metadataObject ID="acquisitionPeriod" classification="DESCRIPTION" category="DMD"><metadataWrap><xmlData>'
        f"<safe:acquisitionPeriod><safe:startTime>{_iso(parts['start'])}</safe:startTime>"
        f"<safe:stopTime>{_iso(parts['stop'])}</safe:stopTime></safe:acquisitionPeriod></xmlData></metadataWrap>"
        "</metadataObject>"
        '<metadataObject ID="generalProductInformation" classification="DESCRIPTION" category="DMD"><metadataWrap>'
        "<xmlData><s1sarl1:standAloneProductInformation><s1sarl1:productClass>S</s1sarl1:productClass>"
        f"<s1sarl1:productType>GRD</s1sarl1:productType>{pols}</s1sarl1:standAloneProductInformation></xmlData>"
        "</metadataWrap></metadataObject>"
        '<metadataObject ID="measurementFrameSet" classification="DESCRIPTION" category="DMD"><metadataWrap><xmlData>'
        '<safe:frameSet><safe:frame><safe:footPrint srsName="http://www.opengis.net/gml/srs/epsg.xml#4326">'
        f"<gml:coordinates>{footprint}</gml:coordinates></safe:footPrint></safe:frame></safe:frameSet></xmlData>"
        f"</metadataWrap></metadataObject></metadataSection><dataObjectSection>{objects}</dataObjectSection></xfdu:XFDU>\n"
    )


def write_s1_grd_safe(parent: Path, *, product: str = S1_PRODUCT, width: int = 256, height: int = 256,
                      spacing: float = 40.0, gcp_steps: int = 11, seed: int = 1,
                      drop: tuple[str, ...] = (), gcps_in_tiff: bool = True) -> Path:
    """``<parent>/<product>.SAFE``; ``drop`` leaves out the measurement of those polarisations;
    ``gcps_in_tiff=False`` leaves the georeferencing to the annotation's geolocation grid only."""
    parts = _s1_parts(product)
    polarisations = S1_POLARISATIONS[parts["polarisation"]]
    safe = parent / f"{product}.SAFE"
    (safe / "measurement").mkdir(parents=True, exist_ok=True)
    (safe / "annotation").mkdir(parents=True, exist_ok=True)
    gcps = s1_gcps(width=width, height=height, spacing=spacing, steps=gcp_steps)
    files: list[tuple[str, str]] = []
    for index, polarisation in enumerate(polarisations, start=1):
        base = _measurement_name(parts, polarisation, index)
        annotation = f"annotation/{base}.xml"
        (safe / annotation).write_text(_annotation_xml(parts, polarisation, gcps, width=width, height=height,
                                                       spacing=spacing))
        files.append((annotation, "s1Level1ProductSchema"))
        if polarisation in drop:
            continue
        measurement = f"measurement/{base}.tiff"
        data = s1_amplitude(width, height, seed=seed + index, level=1.0 if polarisation[0] == polarisation[1] else 0.35)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(safe / measurement, "w", driver="GTiff", width=width, height=height, count=1,
                               dtype="uint16") as dst:
                dst.write(data, 1)
                if gcps_in_tiff:
                    dst.gcps = (gcps, CRS.from_epsg(4326))
        files.append((measurement, "s1Level1MeasurementSchema"))
    corners = [(0, 0), (0, width - 1), (height - 1, width - 1), (height - 1, 0)]
    lon, lat = s1_swath_lonlat([c for _, c in corners], [r for r, _ in corners], width=width, height=height,
                               spacing=spacing)
    footprint = " ".join(f"{y:.6f},{x:.6f}" for x, y in zip(lon, lat, strict=True))
    (safe / "manifest.safe").write_text(_s1_manifest(parts, polarisations, files, footprint))
    return safe


# ---------------------------------------------------------------- Sentinel-2 L1C / L2A

def _s2_parts(product: str) -> dict:
    mission, level, sensing, baseline, orbit, tile, generated = product.split("_")
    return {"mission": mission, "level": level[3:], "sensing": sensing, "baseline": baseline, "orbit": orbit,
            "tile": tile, "generated": generated}


def s2_reflectance(band: str, size: int, *, seed: int) -> np.ndarray:
    """uint16 reflectance-like values (a smooth scene plus noise), 0 (no data) in the upper-left corner triangle."""
    rng = np.random.default_rng(seed + sum(map(ord, band)))
    yy, xx = np.mgrid[0:size, 0:size].astype("float32") / size
    scene = 1200 + 2500 * (0.5 + 0.5 * np.sin(xx * 9.0 + yy * 4.0)) * BAND_LEVELS[band] + 900 * yy
    data = np.clip(scene + rng.normal(0, 150, size=(size, size)), 1, 30000).astype("uint16")
    data[(xx + yy) < 0.25] = 0
    return data


def _write_jp2(path: Path, data: np.ndarray, *, resolution: int) -> None:
    size = data.shape[0]
    block = min(1024, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=size, height=size, count=1, dtype="uint16",
                       crs=S2_CRS, transform=from_origin(*S2_ORIGIN, resolution, resolution),
                       QUALITY=100, REVERSIBLE=True, blockxsize=block, blockysize=block) as dst:
        dst.write(data, 1)


def _s2_mtd(parts: dict, product: str, image_files: list[str]) -> str:
    level = parts["level"]
    root = f"Level-{level[0]}{level[1:]}_User_Product"
    images = "".join(f"<IMAGE_FILE>{escape(name)}</IMAGE_FILE>" for name in image_files)
    sensing = datetime.strptime(parts["sensing"], "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%S.024Z")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{level}.xsd">'
        f"<n1:General_Info><Product_Info><PRODUCT_START_TIME>{sensing}</PRODUCT_START_TIME>"
        f"<PRODUCT_STOP_TIME>{sensing}</PRODUCT_STOP_TIME><PRODUCT_URI>{product}.SAFE</PRODUCT_URI>"
        f"<PROCESSING_LEVEL>Level-{level}</PROCESSING_LEVEL><PRODUCT_TYPE>S2MSI{level[0]}{level[-1]}</PRODUCT_TYPE>"
        f"<PROCESSING_BASELINE>{parts['baseline'][1:3]}.{parts['baseline'][3:]}</PROCESSING_BASELINE>"
        f'<Datatake datatakeIdentifier="GS2_{parts["sensing"]}_000000_{parts["orbit"][1:]}_N{parts["baseline"][1:]}">'
        f"<SPACECRAFT_NAME>Sentinel-2{parts['mission'][-1]}</SPACECRAFT_NAME>"
        f"<DATATAKE_SENSING_START>{sensing}</DATATAKE_SENSING_START>"
        f"<SENSING_ORBIT_NUMBER>{int(parts['orbit'][1:])}</SENSING_ORBIT_NUMBER></Datatake>"
        '<Product_Organisation><Granule_List><Granule imageFormat="JPEG2000">'
        f"{images}</Granule></Granule_List></Product_Organisation></Product_Info>"
        "<Product_Image_Characteristics><Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>"
        "<SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>"
        "<QUANTIFICATION_VALUE>10000</QUANTIFICATION_VALUE></Product_Image_Characteristics>"
        f"</n1:General_Info></n1:{root}>\n"
    )


def write_s2_safe(parent: Path, *, product: str = S2_L2A_PRODUCT, size: int = 256, seed: int = 7,
                  drop: tuple[str, ...] = ()) -> Path:
    """``<parent>/<product>.SAFE`` (L1C or L2A from the name); 20 m bands are ``size // 2``; ``drop`` leaves
    bands out (at every resolution)."""
    parts = _s2_parts(product)
    level = parts["level"]
    safe = parent / f"{product}.SAFE"
    granule = f"GRANULE/{level}_{parts['tile']}_A001234_{parts['sensing']}"
    stem = f"{parts['tile']}_{parts['sensing']}"
    image_files = []
    for resolution, bands in (L2A_BANDS if level == "L2A" else L1C_BANDS).items():
        for band in bands:
            if band in drop:
                continue
            name = (f"{granule}/IMG_DATA/R{resolution}m/{stem}_{band}_{resolution}m" if level == "L2A"
                    else f"{granule}/IMG_DATA/{stem}_{band}")
            pixels = size * 10 // resolution
            _write_jp2(safe / f"{name}.jp2", s2_reflectance(band, pixels, seed=seed), resolution=resolution)
            image_files.append(name)
    (safe / granule / "MTD_TL.xml").write_text(f'<?xml version="1.0"?>\n<Tile_ID>{parts["tile"]}</Tile_ID>\n')
    (safe / f"MTD_MSI{level}.xml").write_text(_s2_mtd(parts, product, image_files))
    (safe / "manifest.safe").write_text('<?xml version="1.0"?>\n<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1"/>\n')
    return safe


# ---------------------------------------------------------------- archive layout

def nbs_directory(product: str) -> str:
    """``<PLATFORM>/<YYYY>/<MM>/<DD>[/IW|/EW]`` for a product name (NBS archive layout)."""
    fields = product.split("_")
    stamp = fields[4] if product.startswith("S1") else fields[2]
    folder = f"{fields[0]}/{stamp[:4]}/{stamp[4:6]}/{stamp[6:8]}"
    return f"{folder}/{fields[1]}" if product.startswith("S1") and fields[1] in ("IW", "EW") else folder


def zip_safe(safe: Path, destination: Path) -> Path:
    """Zip a ``.SAFE`` directory like ESA does (the ``<PRODUCT>.SAFE/`` folder at the top of the zip)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(safe.rglob("*")):
            if path.is_file():
                compress = zipfile.ZIP_STORED if path.suffix in (".jp2", ".tiff") else zipfile.ZIP_DEFLATED
                archive.write(path, f"{safe.name}/{path.relative_to(safe).as_posix()}", compress_type=compress)
    return destination


def place(root: Path, build, product: str, *, zipped: bool, **options) -> Path:
    """Build a product with ``build(parent, product=..., **options)`` at its NBS place under ``root``."""
    folder = root / nbs_directory(product)
    if not zipped:
        return build(folder, product=product, **options)
    staging = root.parent / f".staging-{product}"
    safe = build(staging, product=product, **options)
    target = zip_safe(safe, folder / f"{product}.zip")
    for path in sorted(staging.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    staging.rmdir()
    return target


@dataclass
class SentinelArchive:
    """An archive root and, per role, the product name and its zip or ``.SAFE`` path under the root."""

    root: Path
    products: dict[str, str] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)

    def add(self, role: str, product: str, path: Path) -> None:
        self.products[role] = product
        self.paths[role] = path


def build_archive(root: Path, *, s1_size: int = 256, s2_size: int = 256) -> SentinelArchive:
    """Roles: ``s1_zip``, ``s1_dir`` (1SDV), ``s1_dh_zip`` (1SDH), ``s1_missing`` (VH measurement absent),
    ``l2a_zip``, ``l2a_dir``, ``l1c_zip``, ``broken_zip`` (truncated L2A zip), ``missing_band`` (L2A without B12),
    ``corrupt_zip`` (S1 zip whose VV measurement is garbage)."""
    archive = SentinelArchive(root=root)
    s1 = {"width": s1_size, "height": s1_size}
    archive.add("s1_zip", S1_PRODUCT, place(root, write_s1_grd_safe, S1_PRODUCT, zipped=True, **s1))
    dir_product = S1_PRODUCT.replace("_1234", "_5678")
    archive.add("s1_dir", dir_product, place(root, write_s1_grd_safe, dir_product, zipped=False, **s1))
    dh_product = "S1B_EW_GRDM_1SDH_20260116T060000_20260116T060025_012346_0ABCDF_9ABC"
    archive.add("s1_dh_zip", dh_product, place(root, write_s1_grd_safe, dh_product, zipped=True, **s1))
    missing_vh = S1_PRODUCT.replace("_1234", "_DEAD")
    archive.add("s1_missing", missing_vh, place(root, write_s1_grd_safe, missing_vh, zipped=True, drop=("VH",), **s1))
    archive.add("l2a_zip", S2_L2A_PRODUCT, place(root, write_s2_safe, S2_L2A_PRODUCT, zipped=True, size=s2_size))
    l2a_dir = S2_L2A_PRODUCT.replace("T130000", "T140000")
    archive.add("l2a_dir", l2a_dir, place(root, write_s2_safe, l2a_dir, zipped=False, size=s2_size))
    archive.add("l1c_zip", S2_L1C_PRODUCT, place(root, write_s2_safe, S2_L1C_PRODUCT, zipped=True, size=s2_size))
    missing = S2_L2A_PRODUCT.replace("T130000", "T150000")
    archive.add("missing_band", missing, place(root, write_s2_safe, missing, zipped=True, size=s2_size, drop=("B12",)))
    broken = S2_L2A_PRODUCT.replace("T130000", "T160000")
    broken_path = place(root, write_s2_safe, broken, zipped=True, size=s2_size)
    content = broken_path.read_bytes()
    broken_path.write_bytes(content[: len(content) // 2])
    archive.add("broken_zip", broken, broken_path)
    corrupt = S1_PRODUCT.replace("_1234", "_BEEF")
    corrupt_path = place(root, write_s1_grd_safe, corrupt, zipped=True, **s1)
    _garble_member(corrupt_path, "/measurement/", "-vv-")
    archive.add("corrupt_zip", corrupt, corrupt_path)
    return archive


def _garble_member(path: Path, *needles: str) -> None:
    """Rewrite a zip with the member whose name contains every needle replaced by junk bytes."""
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for info, data in members:
            if all(needle in info.filename for needle in needles):
                data = b"II*\x00" + bytes(range(256)) * 8
            target.writestr(info, data)


@pytest.fixture(scope="session")
def sentinel_archive(tmp_path_factory: pytest.TempPathFactory) -> SentinelArchive:
    """One synthetic NBS archive root for the session (treat it as read-only)."""
    return build_archive(tmp_path_factory.mktemp("nbs") / "nbsArchive")
