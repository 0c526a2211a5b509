"""A LAS/LAZ file as a COPC (Cloud Optimized Point Cloud, https://copc.io) file, written with copclib.

The octree: a cube anchored at the points' minimum, its edge the longest side of their extent (copclib's and the
spec's ``center``/``halfsize`` agree on it). Every node holds a :data:`GRID`³ voxel grid; depth by depth, the first
point (in a fixed pseudo-random order) of each occupied voxel stays in that node and the points colliding with it
go one level deeper, where the voxels are half as wide. A node takes at most :data:`NODE_CAP` points (the rest go
deeper too) and :data:`MAX_DEPTH` takes whatever is left. A point only goes deeper when its voxel is taken, so every
node's parent holds points: the hierarchy is connected from the root.

The points are read in chunks, converted to point format 6/7/8 (LAS 1.4; legacy formats converted, waveforms and
extra bytes dropped) and kept on disk in ``work_dir`` as raw records; the octree is computed on integer voxel
coordinates (12 bytes a point in memory), and each node's records go to copclib as raw bytes (no Python loop per
point). The file is written in ``work_dir``, validated (copclib and laspy's ``CopcReader`` read it back) and only
then renamed onto the target."""

from __future__ import annotations

import datetime
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from georeg.core.errors import InvalidInput
from georeg.core.pointclouds.readers import _las_errors, source_kind
from georeg.core.progress import ProgressCallback, no_progress

GRID_BITS = 7
GRID = 1 << GRID_BITS  # voxels along a node's edge
MAX_DEPTH = 14  # fine voxel coordinates take MAX_DEPTH + GRID_BITS = 21 bits an axis (three in a uint64)
FINE_BITS = MAX_DEPTH + GRID_BITS
NODE_CAP = 100_000
CHUNK_POINTS = 1_000_000
SEED = 20220101
# legacy point formats -> the LAS 1.4 format keeping their attributes (waveform packets are not kept)
TARGET_FORMAT = {0: 6, 1: 6, 2: 7, 3: 7, 4: 6, 5: 7, 6: 6, 7: 7, 8: 8, 9: 6, 10: 8}
SCAN_ANGLE_STEP = 0.006  # degrees per unit of the LAS 1.4 scan_angle
# dimensions whose min/max go to copclib's extents VLR (same names in laspy and copclib)
EXTENTS = ("intensity", "return_number", "number_of_returns", "classification", "user_data", "scan_angle",
           "point_source_id", "gps_time", "red", "green", "blue", "nir")


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(f"the COPC written is not valid: {message}", code="build_invalid")


def _source_wkt(header: object) -> str:
    """The source's CRS as WKT: its WKT VLR verbatim, else its GeoTIFF keys as WKT1 (WKT2 when WKT1 cannot say it),
    else ``""``."""
    for vlr in header.vlrs:
        if vlr.record_id == 2112 and getattr(vlr, "string", None):
            return vlr.string.rstrip("\x00")
    try:
        crs = header.parse_crs()
    except Exception:  # noqa: BLE001 - an unparsable CRS is dropped, the points stay
        return ""
    if crs is None:
        return ""
    return crs.to_wkt("WKT1_GDAL") or crs.to_wkt()


class _Converted:
    """The source's points as LAS 1.4 records in a file of ``work_dir`` (a numpy memmap), with their extents."""

    def __init__(self, source: Path, work_dir: Path, progress: ProgressCallback) -> None:
        self.path = work_dir / "points.bin"
        self.records: np.ndarray | None = None
        try:
            self._read(source, progress)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Remove the records' file."""
        self.records = None
        self.path.unlink(missing_ok=True)

    def _read(self, source: Path, progress: ProgressCallback) -> None:
        import laspy
        from laspy.point.record import PackedPointRecord

        errors = _las_errors()
        read = 0
        try:
            with laspy.open(str(source)) as reader:
                header = reader.header
                self.total = int(header.point_count)
                if self.total == 0:
                    raise InvalidInput(f"{source.name} holds no points", code="empty_point_cloud")
                self.source_format = header.point_format.id
                self.format_id = TARGET_FORMAT.get(self.source_format, 6)
                self.point_format = laspy.PointFormat(self.format_id)
                self.dropped = list(header.point_format.extra_dimension_names)
                self.scales, self.offsets = np.array(header.scales, float), np.array(header.offsets, float)
                self.wkt = _source_wkt(header)
                self.global_encoding_gps = int(header.global_encoding.gps_time_type)
                self.system_identifier = str(header.system_identifier or "")
                self.records = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.point_format.dtype(),
                                                         shape=(self.total,))
                self.extents: dict[str, list[float]] = {}
                self.by_return = np.zeros(15, dtype=np.int64)
                legacy = self.source_format < 6
                for chunk in reader.chunk_iterator(CHUNK_POINTS):
                    count = len(chunk)
                    if read + count > self.total:
                        raise InvalidInput(f"{source.name} holds more points than its header says ({self.total})",
                                           code="invalid_point_cloud")
                    if self.source_format == self.format_id:
                        block = np.asarray(chunk.array)[list(self.point_format.dtype().names)]
                        self.records[read:read + count] = block
                    else:
                        out = PackedPointRecord.from_point_record(chunk, self.point_format)
                        if legacy:
                            angle = np.round(np.asarray(chunk["scan_angle_rank"], float) / SCAN_ANGLE_STEP)
                            out["scan_angle"] = np.clip(angle, -32768, 32767).astype(np.int16)
                        self.records[read:read + count] = out.array
                    self._account(self.records[read:read + count])
                    read += count
                    progress(5 + 40 * read / self.total, "reading", f"{read} of {self.total} points")
        except InvalidInput:
            raise
        except errors as exc:
            raise InvalidInput(f"cannot read the points of {source.name} (after {read}): {exc}",
                               code="invalid_point_cloud") from exc
        if read != self.total:
            raise InvalidInput(f"{source.name} holds {read} points, its header says {self.total}",
                               code="invalid_point_cloud")
        self.records.flush()

    def _account(self, block: np.ndarray) -> None:
        import laspy
        from laspy.point.record import PackedPointRecord

        record = PackedPointRecord(block, laspy.PointFormat(self.format_id))
        names = set(self.point_format.dimension_names)
        for name in ("X", "Y", "Z", *EXTENTS):
            if name in names:
                values = np.asarray(record[name])
                low, high = float(values.min()), float(values.max())
                old = self.extents.get(name)
                self.extents[name] = [low, high] if old is None else [min(old[0], low), max(old[1], high)]
        returns = np.asarray(record["return_number"])
        self.by_return += np.bincount(returns, minlength=16)[1:16]

    def mins_maxs(self) -> tuple[np.ndarray, np.ndarray]:
        """The points' scaled extent."""
        lo = np.array([self.extents[d][0] for d in "XYZ"]) * self.scales + self.offsets
        hi = np.array([self.extents[d][1] for d in "XYZ"]) * self.scales + self.offsets
        return lo, hi

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.total, CHUNK_POINTS):
            yield start, self.records[start:start + CHUNK_POINTS]


def _cells(raw: tuple[np.ndarray, np.ndarray, np.ndarray], scales: np.ndarray, offsets: np.ndarray, mins: np.ndarray,
           span: float, bits: int) -> np.ndarray:
    """The cells of a ``2**bits`` grid over the cube holding the points of integer coordinates ``raw``, ``(n, 3)``
    uint32. Scaling by a power of two is exact: the cells at ``bits`` are those at more bits shifted right."""
    cells = np.empty((len(raw[0]), 3), dtype=np.uint32)
    top = (1 << bits) - 1
    for axis in range(3):
        scaled = raw[axis].astype(np.float64) * scales[axis] + offsets[axis]
        cell = np.floor((scaled - mins[axis]) / span * float(1 << bits)) if span > 0 else np.zeros(len(scaled))
        cells[:, axis] = np.clip(cell, 0, top).astype(np.uint32)
    return cells


def _fine_coordinates(points: _Converted, mins: np.ndarray, span: float) -> np.ndarray:
    """Each point's voxel at the finest level, ``(n, 3)`` uint32 in ``[0, 2**FINE_BITS)``."""
    fine = np.empty((points.total, 3), dtype=np.uint32)
    for start, block in points.blocks():
        fine[start:start + len(block)] = _cells((block["X"], block["Y"], block["Z"]), points.scales, points.offsets,
                                                mins, span, FINE_BITS)
    return fine


def _pack(coords: np.ndarray, shift: int) -> np.ndarray:
    """Voxel (or node) coordinates ``coords >> shift`` packed in one uint64 (21 bits an axis)."""
    shifted = np.right_shift(coords.astype(np.uint64), np.uint64(shift))
    return (shifted[:, 0] << np.uint64(42)) | (shifted[:, 1] << np.uint64(21)) | shifted[:, 2]


def assign_levels(fine: np.ndarray, *, node_cap: int = NODE_CAP, max_depth: int = MAX_DEPTH) -> np.ndarray:
    """The octree depth of each point (see the module's docstring): uint8, one a point."""
    count = len(fine)
    levels = np.full(count, max_depth, dtype=np.uint8)
    remaining = np.random.default_rng(SEED).permutation(count)  # the order in which points claim voxels
    for depth in range(max_depth):
        if remaining.size == 0:
            break
        coords = fine[remaining]
        _, first = np.unique(_pack(coords, max_depth - depth), return_index=True)
        first.sort()  # claimed voxels, in claiming order
        if first.size > node_cap:
            nodes = _pack(coords[first], max_depth - depth + GRID_BITS)
            order = np.argsort(nodes, kind="stable")
            ranked = nodes[order]
            starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
            rank = np.arange(ranked.size) - np.repeat(starts, np.diff(np.r_[starts, ranked.size]))
            keep = np.empty(first.size, dtype=bool)
            keep[order] = rank < node_cap
            first = first[keep]
        levels[remaining[first]] = depth
        taken = np.zeros(remaining.size, dtype=bool)
        taken[first] = True
        remaining = remaining[~taken]
    return levels


def _node_keys(fine: np.ndarray, levels: np.ndarray, max_depth: int) -> np.ndarray:
    """Each point's node as one sortable uint64: depth (4 bits), then x, y, z (20 bits each)."""
    shift = (max_depth - levels.astype(np.int64) + GRID_BITS).astype(np.uint64)
    node = np.right_shift(fine.astype(np.uint64), shift[:, None])
    return ((levels.astype(np.uint64) << np.uint64(60)) | (node[:, 0] << np.uint64(40))
            | (node[:, 1] << np.uint64(20)) | node[:, 2])


def _unpack_key(packed: int) -> tuple[int, int, int, int]:
    mask = (1 << 20) - 1
    return packed >> 60, (packed >> 40) & mask, (packed >> 20) & mask, packed & mask


def _configure(copclib: object, points: _Converted, mins: np.ndarray, maxs: np.ndarray, span: float) -> object:
    config = copclib.CopcConfigWriter(points.format_id, copclib.Vector3(*points.scales),
                                      copclib.Vector3(*points.offsets), points.wkt)
    header = config.las_header
    header.min, header.max = copclib.Vector3(*mins), copclib.Vector3(*maxs)
    header.points_by_return = [int(v) for v in points.by_return]
    header.generating_software = "georeg (copclib)"
    if points.system_identifier:
        header.system_identifier = points.system_identifier[:32]
    header.global_encoding = (header.global_encoding & ~1) | points.global_encoding_gps
    today = datetime.date.today()
    header.creation_year, header.creation_day = today.year, today.timetuple().tm_yday
    info = config.copc_info
    halfsize = span / 2 if span > 0 else float(points.scales.max())
    info.center_x, info.center_y, info.center_z = (float(v) + halfsize for v in mins)
    info.halfsize = halfsize
    info.spacing = 2 * halfsize / GRID
    extents = config.copc_extents
    for index, axis in enumerate("xyz"):
        extent = getattr(extents, axis)
        extent.minimum, extent.maximum = float(mins[index]), float(maxs[index])
    for name in EXTENTS:
        if name in points.extents and hasattr(extents, name):
            getattr(extents, name).minimum, getattr(extents, name).maximum = points.extents[name]
    return config


def _write(partial: Path, points: _Converted, fine: np.ndarray, levels: np.ndarray, max_depth: int,
           config: object, progress: ProgressCallback) -> tuple[int, int]:
    import copclib

    keys = _node_keys(fine, levels, max_depth)
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], ranked.size]
    writer = copclib.FileWriter(str(partial), config)
    try:
        for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
            records = points.records[np.sort(order[start:end])]
            key = copclib.VoxelKey(*_unpack_key(int(ranked[start])))
            writer.AddNode(key, copclib.VectorChar(records.view(np.int8)))
            if number % 64 == 0:
                progress(60 + 30 * end / ranked.size, "writing", f"{number + 1} of {starts.size} nodes")
    finally:
        writer.Close()
    return int(starts.size), int(levels.max())


def validate_copc(path: Path, *, total: int, mins: np.ndarray, maxs: np.ndarray, checksums: dict[str, int],
                  query: tuple[np.ndarray, np.ndarray, int] | None = None) -> dict:
    """Read ``path`` back: copclib (the hierarchy: point counts, every node's parent present) and laspy's
    ``CopcReader`` with lazrs, level by level (every point reachable from the root, in the node of its level that
    holds its position, as many there as the hierarchy says, inside the header's bounds, the coordinate sums of the
    source; and a bounds query giving the expected count). ``build_invalid`` when anything is off."""
    import copclib
    import laspy

    try:
        reader = copclib.FileReader(str(path))
    except (RuntimeError, OSError, ValueError) as exc:
        raise _invalid(f"copclib cannot read it: {exc}") from exc
    try:
        header_count = reader.copc_config.las_header.point_count
        nodes = {(n.key.d, n.key.x, n.key.y, n.key.z): n.point_count for n in reader.GetAllNodes()}
    except (RuntimeError, ValueError) as exc:
        raise _invalid(f"copclib cannot read its hierarchy: {exc}") from exc
    finally:
        reader.Close()
    if header_count != total or sum(nodes.values()) != total:
        raise _invalid(f"{header_count} points in the header, {sum(nodes.values())} in the nodes, {total} in the "
                       "source")
    for (depth, x, y, z), count in nodes.items():
        if count <= 0 or min(x, y, z) < 0 or max(x, y, z) >= 1 << depth:
            raise _invalid(f"node {depth}-{x}-{y}-{z} is empty or outside the cube")
        if depth > 0 and (depth - 1, x >> 1, y >> 1, z >> 1) not in nodes:
            raise _invalid(f"node {depth}-{x}-{y}-{z} has no parent")
    depth = max(key[0] for key in nodes)

    sums = dict.fromkeys(checksums, 0)
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    seen = 0
    try:
        with laspy.CopcReader.open(str(path)) as copc:
            header_mins, header_maxs = np.asarray(copc.header.mins), np.asarray(copc.header.maxs)
            scales, offsets = np.asarray(copc.header.scales), np.asarray(copc.header.offsets)
            span = float((header_maxs - header_mins).max())  # the cube's edge, as copclib and the writer take it
            if span > 0 and not np.isclose(2 * copc.copc_info.halfsize, span):
                raise _invalid(f"the COPC cube ({2 * copc.copc_info.halfsize}) is not the header's extent ({span})")
            for level in range(depth + 1):
                found = copc.query(level=level)
                seen += len(found)
                if not len(found):
                    continue
                raw = (np.asarray(found.X), np.asarray(found.Y), np.asarray(found.Z))
                cells, counts = np.unique(_pack(_cells(raw, scales, offsets, header_mins, span, level), 0),
                                          return_counts=True)
                mask = (1 << 21) - 1
                held = {(level, int(cell) >> 42, (int(cell) >> 21) & mask, int(cell) & mask): int(count)
                        for cell, count in zip(cells, counts, strict=True)}
                expected = {key: count for key, count in nodes.items() if key[0] == level}
                if held != expected:
                    raise _invalid(f"the points of level {level} are not in the nodes the hierarchy says")
                for name in sums:
                    sums[name] += int(np.asarray(found[name], dtype=np.int64).sum())
                low = np.minimum(low, [np.min(found.x), np.min(found.y), np.min(found.z)])
                high = np.maximum(high, [np.max(found.x), np.max(found.y), np.max(found.z)])
            queried = None
            if query is not None:
                queried = len(copc.query(bounds=laspy.copc.Bounds(query[0], query[1])))
    except InvalidInput:
        raise
    except Exception as exc:  # whatever laspy/lazrs raise, the file is not a readable COPC
        raise _invalid(f"laspy's CopcReader cannot read it: {exc}") from exc
    if seen != total:
        raise _invalid(f"{seen} of {total} points are reachable from the root")
    if sums != checksums:
        raise _invalid(f"the points differ from the source's (sums {sums} != {checksums})")
    tolerance = 1e-9 * max(1.0, float(np.abs(np.r_[mins, maxs]).max()))
    if (low < header_mins - tolerance).any() or (high > header_maxs + tolerance).any():
        raise _invalid(f"points [{low}, {high}] lie outside the header's bounds [{header_mins}, {header_maxs}]")
    if not (np.allclose(header_mins, mins) and np.allclose(header_maxs, maxs)):
        raise _invalid(f"header bounds [{header_mins}, {header_maxs}] are not the points' [{mins}, {maxs}]")
    if query is not None and queried != query[2]:
        raise _invalid(f"a bounds query gave {queried} points, {query[2]} expected")
    return {"nodes": len(nodes), "depth": depth}


def _probe(points: _Converted, mins: np.ndarray, maxs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A query box (the middle of the extent, half its size an axis, full height) and how many points it holds,
    counted on the integer coordinates as laspy's query filters them."""
    low = mins + (maxs - mins) * [0.25, 0.25, 0.0]
    high = mins + (maxs - mins) * [0.75, 0.75, 1.0]
    lo_int = np.round((low - points.offsets) / points.scales).astype(np.int64)
    hi_int = np.round((high - points.offsets) / points.scales).astype(np.int64)
    expected = 0
    for _, block in points.blocks():
        inside = np.ones(len(block), dtype=bool)
        for axis, name in enumerate("XYZ"):
            values = block[name].astype(np.int64)
            inside &= (lo_int[axis] <= values) & (values <= hi_int[axis])
        expected += int(inside.sum())
    return low, high, expected


def write_copc(source: Path, target: Path, work_dir: Path, progress: ProgressCallback | None = None) -> dict:
    """``source`` (LAS/LAZ) as a validated COPC file at ``target`` (written in ``work_dir``, then renamed); a report
    ``{points, nodes, depth, pointFormat, sourcePointFormat, crs, droppedDimensions, valid}``. A source that is not
    a readable LAS/LAZ file is ``invalid_point_cloud``, a COPC that does not read back right ``build_invalid``."""
    import copclib

    progress = progress or no_progress
    if source_kind(source) != "las":
        raise InvalidInput(f"{source.name} is not a LAS/LAZ file", code="invalid_point_cloud")
    work_dir.mkdir(parents=True, exist_ok=True)
    partial = work_dir / "cloud.copc.laz"
    points = _Converted(source, work_dir, progress)
    try:
        mins, maxs = points.mins_maxs()
        span = float((maxs - mins).max())
        progress(45, "indexing", f"octree of {points.total} points")
        fine = _fine_coordinates(points, mins, span)
        levels = assign_levels(fine)
        config = _configure(copclib, points, mins, maxs, span)
        progress(60, "writing", "")
        try:
            nodes, depth = _write(partial, points, fine, levels, MAX_DEPTH, config, progress)
        except (RuntimeError, ValueError) as exc:  # copclib's errors; an OSError (disk full) stays one
            raise InvalidInput(f"copclib could not write the COPC file: {exc}", code="build_invalid") from exc
        del fine, levels
        progress(90, "validating", "")
        checksums = {name: int(sum(int(block[name].astype(np.int64).sum()) for _, block in points.blocks()))
                     for name in ("X", "Y", "Z")}
        report = validate_copc(partial, total=points.total, mins=mins, maxs=maxs, checksums=checksums,
                               query=_probe(points, mins, maxs))
        if report["nodes"] != nodes or report["depth"] != depth:
            raise _invalid(f"{report['nodes']} nodes to depth {report['depth']} read back, {nodes} to "
                           f"{depth} written")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        points.discard()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(partial, target)
    progress(100, "built", f"{nodes} nodes")
    return {"points": points.total, "nodes": nodes, "depth": depth, "pointFormat": points.format_id,
            "sourcePointFormat": points.source_format, "crs": bool(points.wkt),
            "droppedDimensions": points.dropped, "valid": True}
