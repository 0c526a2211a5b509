"""Hyperspectral (HySpex-like) NetCDF cubes: the wavelength coordinate, the spectral cube, the elevation variable,
and the 8-bit RGB GeoTIFF of the bands nearest three wavelengths.

A cube is a variable ``(band, y, x)`` whose leading dimension carries a 1-D wavelength variable (named
``wavelength``/``wavelengths``/``band_wavelength`` or with standard_name ``radiation_wavelength`` /
``sensor_band_central_radiation_wavelength``; nanometres, micrometres or metres by its ``units``). The elevation
variable is the 2-D georeferenced variable with standard_name ``height``/``altitude``/``surface_altitude``
(preferred) or named ``z``/``elevation``/``altitude``/``height``/``dem``.

The RGB stretch, per band: a pixel is missing when any of the three bands is (fill value, NaN); ``lo``/``hi`` are
the ``low``/``high`` percentiles (numpy's linear interpolation, float64) of that band's valid pixels; a valid value
``v`` becomes ``clip(rint(1 + 254 * (v - lo) / (hi - lo)), 1, 255)`` (1 everywhere when ``hi == lo``); missing
pixels are 0 in every band, the GeoTIFF's nodata.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from georeg.core.errors import InvalidInput
from georeg.core.netcdf.georef import attr, georeference
from georeg.core.netcdf.source import NetcdfSource

RGB_TARGETS_NM = (640.0, 550.0, 460.0)
RGB_COLORS = ("red", "green", "blue")
DEFAULT_PERCENTILES = (2.0, 98.0)
WAVELENGTH_NAMES = ("wavelength", "wavelengths", "band_wavelength", "wl")
WAVELENGTH_STANDARD_NAMES = ("radiation_wavelength", "sensor_band_central_radiation_wavelength")
ELEVATION_STANDARD_NAMES = ("surface_altitude", "altitude", "height", "height_above_reference_ellipsoid",
                            "height_above_mean_sea_level", "surface_height")
ELEVATION_NAMES = ("z", "elevation", "altitude", "height", "dem")
CUBE_NAMES = ("reflectance", "radiance")
_UNIT_SCALE = {"nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "nanometres": 1.0,
               "um": 1e3, "µm": 1e3, "micrometer": 1e3, "micrometers": 1e3, "micrometre": 1e3, "micron": 1e3,
               "microns": 1e3, "m": 1e9, "meter": 1e9, "metre": 1e9, "meters": 1e9}


@dataclass
class SpectralLayout:
    """Where a HySpex-like file keeps its cube, wavelengths (nm) and elevation."""

    cube: str
    band_dim: str
    wavelength_variable: str
    wavelengths_nm: list[float]
    elevation: str | None

    def nearest_bands(self, targets: tuple[float, ...] = RGB_TARGETS_NM) -> list[dict]:
        """For each target wavelength the nearest band (first one on a tie): its index and wavelength."""
        values = np.asarray(self.wavelengths_nm, dtype="f8")
        chosen = []
        for color, target in zip(RGB_COLORS, targets, strict=False):
            index = int(np.argmin(np.abs(values - target)))
            chosen.append({"color": color, "target_nm": target, "index": index,
                           "wavelength_nm": round(float(values[index]), 6)})
        return chosen


def _wavelength_variable(dataset: Any) -> Any | None:
    candidates = [variable for variable in dataset.variables.values() if variable.ndim == 1
                  and (variable.name.lower() in WAVELENGTH_NAMES
                       or str(attr(variable, "standard_name", "")).lower() in WAVELENGTH_STANDARD_NAMES)]
    return candidates[0] if candidates else None


def _nanometres(variable: Any) -> list[float]:
    units = str(attr(variable, "units", "nm") or "nm").strip().lower()
    scale = _UNIT_SCALE.get(units)
    if scale is None:
        raise InvalidInput(f"wavelength variable {variable.name!r} has units {units!r}; expected nm, um or m",
                           code="not_hyspex")
    values = np.ma.filled(np.ma.asarray(variable[:], dtype="f8"), np.nan) * scale
    if not np.all(np.isfinite(values)):
        raise InvalidInput(f"wavelength variable {variable.name!r} has missing values", code="not_hyspex")
    return [float(value) for value in values]


def _is_elevation(variable: Any, by_standard_name: bool) -> bool:
    if by_standard_name:
        return str(attr(variable, "standard_name", "")).lower() in ELEVATION_STANDARD_NAMES
    return variable.name.lower() in ELEVATION_NAMES


def spectral_layout(source: NetcdfSource) -> SpectralLayout:
    """The cube, wavelengths and elevation of an open file (400 ``not_hyspex`` when it has no wavelength
    coordinate or no georeferenced cube on it)."""
    dataset = source.dataset
    wavelength = _wavelength_variable(dataset)
    if wavelength is None:
        raise InvalidInput(f"{source.location} has no wavelength coordinate: not a HySpex (hyperspectral) product",
                           code="not_hyspex")
    band_dim = wavelength.dimensions[0]
    cubes = [variable for variable in dataset.variables.values()
             if variable.ndim == 3 and variable.dimensions[0] == band_dim and variable.name != wavelength.name]
    cubes.sort(key=lambda variable: (variable.name.lower() not in CUBE_NAMES, variable.name))
    cube = next((variable for variable in cubes if georeference(dataset, variable) is not None), None)
    if cube is None:
        raise InvalidInput(f"{source.location} has no georeferenced ({band_dim}, y, x) variable",
                           code="not_hyspex")
    grids = [variable for variable in dataset.variables.values()
             if variable.ndim == 2 and variable.dimensions == cube.dimensions[1:]]
    elevation = next((variable.name for by_standard_name in (True, False) for variable in grids
                      if _is_elevation(variable, by_standard_name)), None)
    return SpectralLayout(cube=cube.name, band_dim=band_dim, wavelength_variable=wavelength.name,
                          wavelengths_nm=_nanometres(wavelength), elevation=elevation)


def stretch_to_byte(band: np.ndarray, missing: np.ndarray, low: float, high: float) -> tuple[np.ndarray, list[float]]:
    """One band stretched to 1..255 between its ``low``/``high`` percentiles of valid pixels (0 where
    ``missing``); returns the bytes and the (lo, hi) used."""
    values = band.astype("f8")
    valid = values[~missing]
    out = np.zeros(values.shape, dtype=np.uint8)
    if valid.size == 0:
        return out, [float("nan"), float("nan")]
    lo, hi = (float(value) for value in np.percentile(valid, [low, high]))
    scaled = np.ones(values.shape)
    if hi > lo:
        scaled = np.clip(np.rint(1.0 + 254.0 * (values - lo) / (hi - lo)), 1, 255)
    out[~missing] = scaled[~missing].astype(np.uint8)
    return out, [lo, hi]


def write_rgb(source: NetcdfSource, layout: SpectralLayout, destination: Path, *,
              percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> dict:
    """The bands nearest 640/550/460 nm, stretched to an 8-bit RGB GeoTIFF (nodata 0) at ``destination``."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.enums import ColorInterp
    from rasterio.errors import NotGeoreferencedWarning

    dataset = source.dataset
    variable = dataset.variables[layout.cube]
    georef = georeference(dataset, variable)
    bands = layout.nearest_bands()
    height, width = (int(n) for n in variable.shape[-2:])
    planes, missing = [], np.zeros((height, width), dtype=bool)
    for band in bands:
        plane = np.ma.asarray(variable[band["index"], :, :]).astype("f8")
        plane = np.ma.masked_invalid(plane)
        missing |= np.ma.getmaskarray(plane)
        planes.append(np.ma.filled(plane, np.nan))
    stretched = []
    for band, plane in zip(bands, planes, strict=True):
        data, limits = stretch_to_byte(plane, missing, *percentiles)
        band["stretch"] = limits
        stretched.append(data)
    data = np.stack(stretched)
    if georef.flip_rows:
        data = data[:, ::-1, :]
    if georef.flip_cols:
        data = data[:, :, ::-1]
    profile = {"driver": "GTiff", "height": height, "width": width, "count": 3, "dtype": "uint8", "nodata": 0,
               "photometric": "RGB", "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
               "predictor": 2}
    if georef.method == "geotransform":
        profile.update(crs=georef.crs, transform=Affine(*georef.transform))
    with ExitStack() as stack:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            output = stack.enter_context(rasterio.open(destination, "w", **profile))
        output.write(np.ascontiguousarray(data))
        if georef.method == "gcps":
            output.gcps = (georef.gcps, CRS.from_user_input(georef.crs))
        output.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        for index, band in enumerate(bands, start=1):
            output.set_band_description(index, f"{band['color']} {band['wavelength_nm']:g} nm")
        output.update_tags(HYSPEX_VARIANT="rgb", HYSPEX_PERCENTILES=f"{percentiles[0]:g},{percentiles[1]:g}")
    return {"variable": layout.cube, "variant": "rgb", "band_dimension": layout.band_dim, "bands": bands,
            "percentiles": list(percentiles), "georeferencing": georef.method, "grid_mapping": georef.grid_mapping,
            "time_index": None}
