"""Points in chunks of float64 ``(x, y, z)`` arrays, whatever the source: LAS/LAZ (laspy's chunk iterator), XYZ
text files (numpy, a block of lines at a time) and NetCDF files with 1-D x/y/z variables (slices).

The kind is told by the file's first bytes (``LASF``, ``CDF``/HDF5), else by its suffix (.las/.laz/.nc), else
it is read as text. Every read error is a 400 with a code saying which kind of file was not readable."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from georeg.core.config import Settings
from georeg.core.errors import InvalidInput

CHUNK_POINTS = 1_000_000
CSV_CHUNK_LINES = 250_000
LAS_SUFFIXES = {".las", ".laz"}
NETCDF_SUFFIXES = {".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5"}
SourceKind = Literal["las", "netcdf", "csv"]
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]
Extent = tuple[float, float, float, float]


class PointReader(Protocol):
    kind: SourceKind

    def extent(self) -> Extent | None:
        """[minx, miny, maxx, maxy] of the finite points; None without any."""

    def chunks(self) -> Iterator[Chunk]:
        """The points, a chunk at a time."""

    def fraction(self) -> float:
        """How much of the source the chunks read so far cover (0..1)."""


def source_kind(path: Path) -> SourceKind:
    """``las``, ``netcdf`` or ``csv`` from the first bytes, then the suffix; a .las/.laz file that does not start
    like one is not a LAS file (400 ``invalid_point_cloud``)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    suffix = path.suffix.lower()
    if head.startswith(b"LASF"):
        return "las"
    if head[:3] == b"CDF" or head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "netcdf"
    if suffix in LAS_SUFFIXES:
        raise InvalidInput(f"{path.name} is not a LAS/LAZ file (no LASF signature)", code="invalid_point_cloud")
    if suffix in NETCDF_SUFFIXES:
        raise InvalidInput(f"{path.name} is not a NetCDF file", code="invalid_netcdf")
    return "csv"


# --- LAS / LAZ -------------------------------------------------------------------------------------------------


def _las_errors() -> tuple[type[BaseException], ...]:
    """What laspy raises on a broken file (lazrs's errors are RuntimeErrors)."""
    import laspy

    return (laspy.errors.LaspyException, OSError, ValueError, RuntimeError, EOFError)


class LasReader:
    kind: SourceKind = "las"

    def __init__(self, path: Path, stack: ExitStack, chunk_points: int) -> None:
        import laspy

        self.path, self.chunk_points, self.errors = path, chunk_points, _las_errors()
        try:
            self.reader = stack.enter_context(laspy.open(str(path)))
            header = self.reader.header
            self.total = int(header.point_count)
            self.mins, self.maxs = [float(v) for v in header.mins], [float(v) for v in header.maxs]
        except self.errors as exc:
            raise InvalidInput(f"{path.name} is not a readable LAS/LAZ file: {exc}",
                               code="invalid_point_cloud") from exc
        self.read = 0

    def extent(self) -> Extent | None:
        """The header's extent (LAS writers keep it; points outside it would be counted as outside)."""
        if self.total == 0 or not all(math.isfinite(v) for v in (*self.mins[:2], *self.maxs[:2])):
            return None
        return (self.mins[0], self.mins[1], self.maxs[0], self.maxs[1])

    def chunks(self) -> Iterator[Chunk]:
        try:
            if self.read:
                self.reader.seek(0)
                self.read = 0
            for points in self.reader.chunk_iterator(self.chunk_points):
                self.read += len(points)
                yield (np.asarray(points.x, dtype=np.float64), np.asarray(points.y, dtype=np.float64),
                       np.asarray(points.z, dtype=np.float64))
        except self.errors as exc:
            raise InvalidInput(f"cannot read the points of {self.path.name} (after {self.read}): {exc}",
                               code="invalid_point_cloud") from exc

    def fraction(self) -> float:
        return self.read / self.total if self.total else 1.0


# --- XYZ text --------------------------------------------------------------------------------------------------


def _floats(tokens: list[str]) -> bool:
    try:
        [float(token) for token in tokens]
    except ValueError:
        return False
    return True


class CsvReader:
    """x, y, z columns of a text file: comma, semicolon or whitespace separated, ``#`` comments, an optional header
    line (its ``x``/``y``/``z`` columns are used when it names them, else the first three)."""

    kind: SourceKind = "csv"

    def __init__(self, path: Path, chunk_lines: int) -> None:
        self.path, self.chunk_lines = path, chunk_lines
        self.size = max(1, path.stat().st_size)
        self.consumed = 0
        self.delimiter, self.columns, self.skip = self._layout()

    def _lines(self) -> Iterator[str]:
        try:
            with open(self.path, encoding="utf-8-sig") as handle:
                yield from handle
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{self.path.name} is not a UTF-8 text XYZ file: {exc.reason}",
                               code="invalid_csv") from exc

    def _layout(self) -> tuple[str | None, tuple[int, int, int], int]:
        for number, line in enumerate(self._lines()):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            delimiter = "," if "," in text else ";" if ";" in text else None
            tokens = [token.strip() for token in text.split(delimiter)]
            if len(tokens) < 3:
                raise InvalidInput(f"{self.path.name}: line {number + 1} has fewer than 3 columns (x, y, z)",
                                   code="invalid_csv")
            if _floats(tokens):
                return delimiter, (0, 1, 2), number
            names = [token.strip("\"'").lower() for token in tokens]
            columns = tuple(names.index(name) for name in ("x", "y", "z")) if {"x", "y", "z"} <= set(names) else (
                0, 1, 2)
            return delimiter, columns, number + 1
        raise InvalidInput(f"{self.path.name} holds no points", code="empty_point_cloud")

    def chunks(self) -> Iterator[Chunk]:
        self.consumed = 0
        lines = itertools.islice(self._lines(), self.skip, None)
        first = self.skip + 1
        while block := list(itertools.islice(lines, self.chunk_lines)):
            self.consumed += sum(len(line) for line in block)
            try:
                data = np.loadtxt(block, delimiter=self.delimiter, usecols=self.columns, ndmin=2, dtype=np.float64,
                                  comments="#")
            except ValueError as exc:
                raise InvalidInput(f"{self.path.name}: lines {first}-{first + len(block) - 1}: {exc}",
                                   code="invalid_csv") from exc
            first += len(block)
            if data.size:
                yield data[:, 0].copy(), data[:, 1].copy(), data[:, 2].copy()

    def extent(self) -> Extent | None:
        return scan_extent(self.chunks())

    def fraction(self) -> float:
        return min(1.0, self.consumed / self.size)


# --- NetCDF ----------------------------------------------------------------------------------------------------


class NetcdfPoints:
    """1-D x/y/z variables of the same length (masked or non-finite values are dropped later)."""

    kind: SourceKind = "netcdf"

    def __init__(self, source: object, names: tuple[str, str, str], chunk_points: int) -> None:
        self.source, self.chunk_points = source, chunk_points
        dataset = source.dataset
        missing = [name for name in names if name not in dataset.variables]
        if missing:
            raise InvalidInput(f"{source.location} has no variable {missing[0]!r}", code="unknown_variable",
                               details={"available": sorted(dataset.variables)})
        self.variables = [dataset.variables[name] for name in names]
        shapes = {tuple(variable.shape) for variable in self.variables}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise InvalidInput(f"variables {list(names)} must be 1-D and of the same length (shapes "
                               f"{[tuple(v.shape) for v in self.variables]})", code="invalid_point_variables")
        self.total = int(self.variables[0].shape[0])
        self.read = 0

    def chunks(self) -> Iterator[Chunk]:
        self.read = 0
        for start in range(0, self.total, self.chunk_points):
            stop = min(self.total, start + self.chunk_points)
            try:
                arrays = [np.ma.filled(np.ma.asarray(variable[start:stop]).astype(np.float64), np.nan)
                          for variable in self.variables]
            except (OSError, RuntimeError, ValueError, TypeError) as exc:
                raise self.source.read_error(exc, f"points {start}-{stop}") from exc
            self.read = stop
            yield arrays[0], arrays[1], arrays[2]

    def extent(self) -> Extent | None:
        return scan_extent(self.chunks())

    def fraction(self) -> float:
        return self.read / self.total if self.total else 1.0


def scan_extent(chunks: Iterator[Chunk]) -> Extent | None:
    """The extent of the finite points of ``chunks`` (one pass)."""
    lo, hi = np.array([np.inf, np.inf]), np.array([-np.inf, -np.inf])
    for x, y, z in chunks:
        keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
        if keep.any():
            lo = np.minimum(lo, [x[keep].min(), y[keep].min()])
            hi = np.maximum(hi, [x[keep].max(), y[keep].max()])
    if not np.isfinite(lo).all():
        return None
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


@contextmanager
def open_points(settings: Settings, path: Path, *, variables: tuple[str, str, str] = ("x", "y", "z"),
                chunk_points: int = CHUNK_POINTS) -> Iterator[PointReader]:
    """A reader of the points of ``path`` (already resolved under the mounted roots)."""
    kind = source_kind(path)
    with ExitStack() as stack:
        if kind == "las":
            yield LasReader(path, stack, chunk_points)
        elif kind == "netcdf":
            from georeg.core.netcdf.source import open_netcdf

            source = stack.enter_context(open_netcdf(settings, path))
            yield NetcdfPoints(source, variables, chunk_points)
        else:
            yield CsvReader(path, min(chunk_points, CSV_CHUNK_LINES))
