"""NetCDF sources read with netCDF4: OPeNDAP (DAP2) URLs, downloadable NetCDF files and local paths.

:func:`open_netcdf` opens a source (every URL passes the download host allow-list ``GEOREG_DOWNLOAD_HOSTS``;
OPeNDAP redirects are followed by georeg, each hop checked, before netCDF-C sees the URL) and
:func:`list_variables` describes its variables, data variables with how they are georeferenced
(:mod:`georeg.core.netcdf.georef`). :mod:`georeg.core.netcdf.to_geotiff` writes them as GeoTIFFs.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
from pydantic import BaseModel

from georeg.core.config import Settings
from georeg.core.errors import GeoregError, InvalidInput, NotFound, UpstreamError, UpstreamTimeout
from georeg.core.fetch import fetch
from georeg.core.netcdf.georef import attr, axis_of, georeference, names_in
from georeg.core.registry.objects import NETCDF_SUFFIXES
from georeg.core.storage import temp_writer

SourceKind = Literal["opendap", "download", "local"]
DAP_SUFFIXES = (".html", ".dds", ".das", ".dods", ".info", ".ascii")
MAX_DDS_BYTES = 16 * 1024 * 1024
_NETCDF_LOCK = threading.RLock()


def dap_base(url: str) -> str:
    """An OPeNDAP dataset URL without query, fragment or a DAP response suffix (``.html``, ``.dds`` …)."""
    parts = urlsplit(url.strip())
    path = parts.path
    for suffix in DAP_SUFFIXES:
        if path.lower().endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def url_kind(url: str) -> Literal["opendap", "download"] | None:
    """``opendap`` for THREDDS ``dodsC`` paths and DAP response URLs, ``download`` for NetCDF file names."""
    path = unquote(urlsplit(url).path).lower()
    if "/dodsc/" in path or path.endswith(DAP_SUFFIXES):
        return "opendap"
    if PurePosixPath(path).suffix in NETCDF_SUFFIXES:
        return "download"
    return None


def source_name(location: str) -> str:
    """The file name of a source without its NetCDF suffix (``…/S1A_x.nc.html`` -> ``S1A_x``)."""
    name = PurePosixPath(unquote(urlsplit(dap_base(location)).path) if "://" in location else location).name
    stem = PurePosixPath(name)
    return (stem.stem if stem.suffix.lower() in NETCDF_SUFFIXES else name) or "netcdf"


@dataclass
class NetcdfSource:
    """An open NetCDF dataset and where it came from (errors while reading are blamed accordingly)."""

    dataset: Any
    location: str
    kind: SourceKind

    @property
    def name(self) -> str:
        return source_name(self.location)

    def read_error(self, exc: BaseException, what: str) -> GeoregError:
        """The domain error for a failure reading ``what``: 502 from an OPeNDAP server, 400 for a broken file."""
        message = f"cannot read {what} from {self.location}: {exc}"
        if self.kind == "opendap":
            return UpstreamError(message, code="opendap_failed")
        return InvalidInput(message, code="invalid_netcdf")


def _open_dataset(target: str, *, location: str, kind: SourceKind) -> Any:
    import netCDF4

    try:
        dataset = netCDF4.Dataset(target, mode="r")
    except (OSError, RuntimeError, ValueError) as exc:
        if kind == "opendap":
            raise UpstreamError(f"the OPeNDAP server could not open {location}: {exc}", code="opendap_failed") from exc
        raise InvalidInput(f"{location} is not a readable NetCDF file: {exc}", code="invalid_netcdf") from exc
    dataset.set_auto_maskandscale(True)
    return dataset


def _resolve_opendap(settings: Settings, url: str) -> str:
    """The dataset URL after redirects (each hop on an allowed host), checked to answer a DAP2 DDS."""
    base = dap_base(url)
    with temp_writer(settings.tmp_dir, max_bytes=MAX_DDS_BYTES) as writer:
        try:
            fetched = fetch(f"{base}.dds", writer, allowed_hosts=settings.download_hosts,
                            timeout=settings.csw_timeout_seconds)
        except UpstreamTimeout as exc:
            raise UpstreamTimeout(f"the OPeNDAP server of {base} did not answer in time",
                                  code="opendap_timeout") from exc
        except UpstreamError as exc:
            raise UpstreamError(f"OPeNDAP dataset {base}: {exc.message}", code="opendap_unavailable",
                                details=exc.details) from exc
        with open(writer.path, "rb") as handle:
            head = handle.read(64).lstrip()
    if not head.startswith(b"Dataset"):
        raise UpstreamError(f"{base} does not answer like an OPeNDAP (DAP2) dataset", code="not_opendap")
    return dap_base(fetched.url)


def _set_http_timeouts(seconds: float) -> None:
    import netCDF4

    value = str(max(1, math.ceil(seconds)))
    for key in ("HTTP.TIMEOUT", "HTTP.CONNECTTIMEOUT"):
        netCDF4.rc_set(key, value)


@contextmanager
def open_netcdf(settings: Settings, source: str | Path, *, kind: SourceKind | None = None) -> Iterator[NetcdfSource]:
    """Open an OPeNDAP URL, a NetCDF URL (downloaded to the data dir's tmp, size-limited, removed afterwards) or
    a local :class:`~pathlib.Path`. netCDF-C is not thread-safe: one source is open at a time per process."""
    with ExitStack() as stack:
        if isinstance(source, Path):
            if not source.is_file():
                raise NotFound(f"no NetCDF file at {source}", code="file_not_found")
            kind, location, target = "local", str(source), str(source)
        else:
            location = source
            kind = kind or url_kind(source) or "opendap"
            if kind == "opendap":
                _set_http_timeouts(settings.csw_timeout_seconds)
                location = _resolve_opendap(settings, source)
                target = f"{location}#mode=dap2"
            else:
                writer = stack.enter_context(temp_writer(settings.tmp_dir, max_bytes=settings.download_max_bytes))
                fetch(source, writer, allowed_hosts=settings.download_hosts, timeout=settings.csw_timeout_seconds)
                writer.finish(writer.path)
                target = str(writer.path)
        stack.enter_context(_NETCDF_LOCK)
        dataset = _open_dataset(target, location=location, kind=kind)
        stack.callback(dataset.close)
        yield NetcdfSource(dataset=dataset, location=location, kind=kind)


# --- variables -------------------------------------------------------------------------------------------------


class VariableInfo(BaseModel):
    name: str
    role: Literal["data", "coordinate", "auxiliary", "grid_mapping"]
    dimensions: list[str]
    shape: list[int]
    dtype: str
    units: str | None = None
    long_name: str | None = None
    standard_name: str | None = None
    grid_mapping: str | None = None
    georeferencing: Literal["geotransform", "gcps"] | None = None
    problem: str | None = None

    @property
    def gridded(self) -> bool:
        """A data variable that can be written as a GeoTIFF."""
        return self.role == "data" and self.georeferencing is not None


def auxiliary_names(dataset: Any) -> tuple[set[str], set[str]]:
    """(auxiliary coordinate and bounds variables, grid mapping variables) named by the file's variables."""
    auxiliary: set[str] = set()
    mappings: set[str] = set()
    for variable in dataset.variables.values():
        auxiliary.update(names_in(attr(variable, "coordinates")))
        auxiliary.update(names_in(attr(variable, "bounds")))
        mapping = attr(variable, "grid_mapping")
        if mapping:
            mappings.add(str(mapping).split(":")[0].split()[0])
    for variable in dataset.variables.values():
        if variable.ndim == 2 and axis_of(variable, ndim=2) in ("lon", "lat"):
            auxiliary.add(variable.name)
    return auxiliary, mappings


def _role(variable: Any, auxiliary: set[str], mappings: set[str]) -> str:
    if variable.name in mappings or (variable.ndim == 0 and attr(variable, "grid_mapping_name")):
        return "grid_mapping"
    if variable.ndim == 1 and variable.dimensions[0] == variable.name:
        return "coordinate"
    if variable.name in auxiliary or variable.ndim < 2 or np.dtype(variable.dtype).kind not in "iuf":
        return "auxiliary"
    return "data"


def list_variables(source: NetcdfSource) -> list[VariableInfo]:
    """Every variable with its dimensions, units and names; data variables say how they are georeferenced."""
    dataset = source.dataset
    try:
        auxiliary, mappings = auxiliary_names(dataset)
        infos = []
        for name, variable in dataset.variables.items():
            role = _role(variable, auxiliary, mappings)
            georef, problem = None, None
            if role == "data":
                try:
                    georef = georeference(dataset, variable)
                except InvalidInput as exc:
                    problem = exc.message
            infos.append(VariableInfo(
                name=name, role=role, dimensions=list(variable.dimensions), shape=[int(n) for n in variable.shape],
                dtype=str(np.dtype(variable.dtype)), units=_text(attr(variable, "units")),
                long_name=_text(attr(variable, "long_name")), standard_name=_text(attr(variable, "standard_name")),
                grid_mapping=_text(attr(variable, "grid_mapping")), georeferencing=georef.method if georef else None,
                problem=problem,
            ))
    except GeoregError:
        raise
    except (OSError, RuntimeError, IndexError, ValueError) as exc:
        raise source.read_error(exc, "the variables") from exc
    return infos


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
