"""Reading a SAFE product, zipped (through GDAL's ``/vsizip/``) or unpacked as a ``.SAFE`` directory."""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from xml.sax.saxutils import escape

import rasterio
from lxml import etree
from rasterio.errors import RasterioError

from georeg.core.sentinel.errors import BrokenArchive, InvalidSafe
from georeg.core.sentinel.products import strip_suffix

MAX_MEMBERS = 100_000
MAX_XML_BYTES = 64 * 1024 * 1024
MANIFEST = "manifest.safe"
_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
               "float32": "Float32", "float64": "Float64", "complex64": "CFloat32", "int8": "Int8"}
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _clean_member(name: str) -> bool:
    """Relative, no ``..``, no backslashes or NUL: names GDAL paths can safely be built from."""
    parts = PurePosixPath(name).parts
    return bool(parts) and not name.startswith("/") and "\\" not in name and "\x00" not in name and ".." not in parts


def gcp_vrt(dataset: rasterio.io.DatasetReader, gcps: list) -> str:
    """A VRT (XML text GDAL opens) of ``dataset`` carrying ``gcps`` (lon/lat, EPSG:4326)."""
    points = "".join(f'<GCP Id="{i}" Pixel="{p.col!r}" Line="{p.row!r}" X="{p.x!r}" Y="{p.y!r}" Z="{p.z or 0.0!r}"/>'
                     for i, p in enumerate(gcps))
    bands = "".join(
        f'<VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{index}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{escape(dataset.name)}</SourceFilename>'
        f"<SourceBand>{index}</SourceBand></SimpleSource></VRTRasterBand>"
        for index, dtype in enumerate(dataset.dtypes, start=1)
    )
    return (f'<VRTDataset rasterXSize="{dataset.width}" rasterYSize="{dataset.height}">'
            f'<GCPList Projection="EPSG:4326">{points}</GCPList>{bands}</VRTDataset>')


class SafeArchive:
    """The files of one SAFE product as POSIX paths relative to its ``.SAFE`` folder (``members``).

    Open with :meth:`open`: a zip that cannot be read raises :class:`BrokenArchive`, a folder or zip
    without ``manifest.safe`` raises :class:`InvalidSafe`.
    """

    def __init__(self, path: Path, kind: str, members: dict[str, str]) -> None:
        self.path = path
        self.kind = kind
        self._members = members  # relative member -> name in the zip (or relative path in the directory)

    @property
    def product(self) -> str:
        return strip_suffix(self.path.name)

    @property
    def members(self) -> list[str]:
        return sorted(self._members)

    @classmethod
    def open(cls, path: Path) -> SafeArchive:
        if path.is_dir():
            return cls(path, "directory", cls._directory_members(path))
        try:
            with zipfile.ZipFile(path) as archive:
                names = [info.filename for info in archive.infolist() if not info.is_dir()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise BrokenArchive(f"{path.name} is not a readable zip archive: {exc}") from exc
        if len(names) > MAX_MEMBERS:
            raise InvalidSafe(f"{path.name} holds more than {MAX_MEMBERS} files")
        names = [name for name in names if _clean_member(name)]
        manifests = sorted((name for name in names if PurePosixPath(name).name == MANIFEST),
                           key=lambda name: name.count("/"))
        if not manifests:
            raise InvalidSafe(f"{path.name} is not a SAFE product (no {MANIFEST})", code="not_a_safe")
        prefix = manifests[0][: -len(MANIFEST)]
        return cls(path, "zip", {name[len(prefix):]: name for name in names if name.startswith(prefix)})

    @staticmethod
    def _directory_members(root: Path) -> dict[str, str]:
        members: dict[str, str] = {}
        resolved_root = root.resolve()
        for folder, _, files in os.walk(root):
            for filename in files:
                path = Path(folder) / filename
                if path.is_symlink() and resolved_root not in path.resolve().parents:
                    continue
                relative = path.relative_to(root).as_posix()
                members[relative] = relative
                if len(members) > MAX_MEMBERS:
                    raise InvalidSafe(f"{root.name} holds more than {MAX_MEMBERS} files")
        if MANIFEST not in members:
            raise InvalidSafe(f"{root.name} is not a SAFE product (no {MANIFEST})", code="not_a_safe")
        return members

    def matching(self, pattern: re.Pattern) -> Iterator[tuple[str, re.Match]]:
        """``(member, match)`` for every member the pattern matches in full, in sorted order."""
        for member in self.members:
            if match := pattern.fullmatch(member):
                yield member, match

    def has(self, member: str) -> bool:
        return member in self._members

    def gdal_path(self, member: str) -> str:
        """A path GDAL opens (``/vsizip/<zip>/<name>`` for zips)."""
        name = self._members[member]
        return f"/vsizip/{self.path}/{name}" if self.kind == "zip" else str(self.path / name)

    @contextmanager
    def raster(self, member: str, *, gcps: list | None = None) -> Iterator[rasterio.io.DatasetReader]:
        """Open a raster member (georeferenced by ``gcps`` in lon/lat when given, through a VRT); GDAL errors
        while it is open become :class:`InvalidSafe` naming the member."""
        try:
            with rasterio.open(self.gdal_path(member)) as dataset:
                if gcps is None:
                    yield dataset
                else:
                    with rasterio.open(gcp_vrt(dataset, gcps)) as georeferenced:
                        yield georeferenced
        except RasterioError as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidSafe(f"{self.product}: cannot read {member}: {detail}", code="unreadable_raster") from exc

    def read_xml(self, member: str) -> etree._Element:
        """Parse an XML member (no entity expansion, no network, size-limited)."""
        if member not in self._members:
            raise InvalidSafe(f"{self.product}: {member} is missing", code="not_a_safe")
        try:
            if self.kind == "zip":
                with zipfile.ZipFile(self.path) as archive:
                    info = archive.getinfo(self._members[member])
                    self._check_size(member, info.file_size)
                    data = archive.read(info)
            else:
                path = self.path / self._members[member]
                self._check_size(member, path.stat().st_size)
                data = path.read_bytes()
            return etree.fromstring(data, parser=_XML_PARSER)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise BrokenArchive(f"{self.product}: cannot read {member}: {exc}") from exc
        except etree.XMLSyntaxError as exc:
            raise InvalidSafe(f"{self.product}: {member} is not well-formed XML: {exc}") from exc

    def _check_size(self, member: str, size: int) -> None:
        if size > MAX_XML_BYTES:
            raise InvalidSafe(f"{self.product}: {member} is larger than {MAX_XML_BYTES} bytes")
