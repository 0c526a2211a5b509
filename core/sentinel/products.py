"""Sentinel product names and where their SAFE archives live under the mounted NBS archive roots.

NBS layout: ``<PLATFORM>/<YYYY>/<MM>/<DD>/[IW|EW/]<PRODUCT>.zip`` (or an unpacked ``<PRODUCT>.SAFE`` directory),
platform and date taken from the product name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from georeg.core.errors import InvalidInput, PermissionDenied
from georeg.core.sentinel.errors import SafeNotFound, UnsupportedProduct

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{5,199}$")
S1_NAME = re.compile(
    r"^(?P<platform>S1[A-D])_(?P<mode>IW|EW|SM|WV|S[1-6])_(?P<type>[A-Z]{3})(?P<res>[FHM_])_(?P<level>\d)[SA]"
    r"(?P<pol>SH|SV|DH|DV|HH|HV|VV|VH)_(?P<start>\d{8}T\d{6})_(?P<stop>\d{8}T\d{6})_\d{6}_[0-9A-F]{6}_[0-9A-F]{4}$"
)
S2_NAME = re.compile(
    r"^(?P<platform>S2[A-D])_MSI(?P<level>L1C|L2A|L1B|L2B|L3[A-Z])_(?P<start>\d{8}T\d{6})_N\d{4}_R\d{3}"
    r"_T(?P<tile>\d{2}[A-Z]{3})_\d{8}T\d{6}$"
)
ANY_SENTINEL = re.compile(r"^(S[1-6][A-D]?|S5P)_")
SUFFIXES = (".zip", ".SAFE")
S1_POLARISATIONS = {"SH": ("HH",), "SV": ("VV",), "DH": ("HH", "HV"), "DV": ("VV", "VH"),
                    "HH": ("HH",), "HV": ("HV",), "VV": ("VV",), "VH": ("VH",)}


@dataclass(frozen=True)
class ProductName:
    """A parsed, supported product name: ``kind`` is ``S1_GRD``, ``S2_L1C`` or ``S2_L2A``."""

    name: str
    kind: str
    platform: str
    acquired_at: datetime
    mode: str | None = None
    polarisations: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        return self.kind[:2]

    def archive_dirs(self) -> list[str]:
        """Relative folders the NBS layout may keep the product in, most specific first."""
        day = f"{self.platform}/{self.acquired_at:%Y/%m/%d}"
        return [f"{day}/{self.mode}", day] if self.mode in ("IW", "EW") else [day]


def strip_suffix(raw: str) -> str:
    for suffix in SUFFIXES:
        if raw.endswith(suffix):
            return raw[: -len(suffix)]
    return raw


def _stamp(value: str, product: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"{product!r} carries an impossible date {value!r}", code="invalid_product_name") from exc


def parse_product(raw: str) -> ProductName:
    """Parse a Sentinel-1 GRD or Sentinel-2 L1C/L2A product name (``.zip``/``.SAFE`` suffix allowed).

    Malformed names raise :class:`InvalidInput`; well-formed names of products georeg cannot process
    (S1 SLC/OCN, S2 L1B, S3 ...) raise :class:`UnsupportedProduct`.
    """
    name = strip_suffix((raw or "").strip())
    if not SAFE_NAME.match(name):
        raise InvalidInput(f"{raw!r} is not a Sentinel product name", code="invalid_product_name")
    if match := S1_NAME.match(name):
        if match["type"] != "GRD":
            raise UnsupportedProduct(f"Sentinel-1 {match['type']} products are not supported (GRD only): {name}")
        return ProductName(name=name, kind="S1_GRD", platform=match["platform"], mode=match["mode"],
                           acquired_at=_stamp(match["start"], name), polarisations=S1_POLARISATIONS[match["pol"]])
    if match := S2_NAME.match(name):
        if match["level"] not in ("L1C", "L2A"):
            raise UnsupportedProduct(f"Sentinel-2 {match['level']} products are not supported (L1C, L2A): {name}")
        return ProductName(name=name, kind=f"S2_{match['level']}", platform=match["platform"],
                           acquired_at=_stamp(match["start"], name))
    if ANY_SENTINEL.match(name):
        raise UnsupportedProduct(f"unsupported product type: {name} (Sentinel-1 GRD, Sentinel-2 L1C/L2A only)")
    raise InvalidInput(f"{raw!r} is not a Sentinel product name", code="invalid_product_name")


def select_products(requested: list[str] | None, *, default: Iterable[str], normalize: Callable[[str], str],
                    check: Callable[[str, str], None]) -> list[str]:
    """The requested outputs of a product, normalized, checked (``check(raw, value)`` raises
    :class:`InvalidInput`) and without repeats, in the order asked; ``default`` when none are asked."""
    if not requested:
        return list(default)
    chosen: list[str] = []
    for raw in requested:
        value = normalize(raw)
        check(raw, value)
        if value not in chosen:
            chosen.append(value)
    return chosen


def _roots(roots: list[Path]) -> list[Path]:
    resolved = [root.expanduser().resolve() for root in roots]
    if not resolved:
        raise PermissionDenied("no SAFE archive roots are configured (GEOREG_SAFE_ROOTS)", code="no_safe_roots")
    return resolved


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def locate_safe(product: str, roots: list[Path]) -> Path:
    """The ``.SAFE`` directory (preferred) or ``.zip`` of ``product`` under the roots, in the NBS layout.

    Raises :class:`SafeNotFound` when absent and :class:`PermissionDenied` when what is there resolves
    (through symlinks) outside every root.
    """
    parsed = parse_product(product)
    resolved_roots = _roots(roots)
    for root in resolved_roots:
        for folder in parsed.archive_dirs():
            for suffix in (".SAFE", ".zip"):
                candidate = root / folder / f"{parsed.name}{suffix}"
                if not candidate.exists():
                    continue
                target = candidate.resolve()
                if not _within(target, resolved_roots):
                    raise PermissionDenied(f"the SAFE of {parsed.name} resolves outside the SAFE roots",
                                           code="outside_safe_roots")
                if (suffix == ".SAFE" and target.is_dir()) or (suffix == ".zip" and target.is_file()):
                    return target
    raise SafeNotFound(f"no SAFE archive of {parsed.name} under the SAFE roots "
                       f"(looked in {', '.join(parsed.archive_dirs())})")


def resolve_safe_path(raw: str, roots: list[Path]) -> Path:
    """An explicit ``<PRODUCT>.zip`` / ``<PRODUCT>.SAFE`` path, absolute or relative to a root; it must stay
    inside the roots after resolving symlinks and ``..``."""
    if not raw or "\x00" in raw or any(ord(ch) < 32 for ch in raw):
        raise InvalidInput("the SAFE path is empty or contains control characters", code="invalid_path")
    resolved_roots = _roots(roots)
    candidate = Path(raw).expanduser()
    options = [candidate] if candidate.is_absolute() else [root / candidate for root in resolved_roots]
    for option in options:
        target = option.resolve()
        if not _within(target, resolved_roots):
            raise PermissionDenied(f"{raw!r} is outside the SAFE roots", code="outside_safe_roots")
        if target.exists():
            if not target.name.endswith(SUFFIXES) or target.is_dir() != target.name.endswith(".SAFE"):
                raise InvalidInput(f"{raw!r} is neither a <PRODUCT>.zip file nor a <PRODUCT>.SAFE directory",
                                   code="not_a_safe")
            return target
    raise SafeNotFound(f"no SAFE archive at {raw!r}")


def find_safe(roots: list[Path], *, product: str | None = None, safe_path: str | None = None) -> Path:
    """The SAFE named by an explicit ``safe_path`` (checked against the roots) or located for ``product``."""
    if safe_path:
        return resolve_safe_path(safe_path, roots)
    if product:
        return locate_safe(product, roots)
    raise InvalidInput("give a product name or a SAFE path", code="safe_required")
