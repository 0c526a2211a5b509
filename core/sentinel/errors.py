"""The errors of SAFE processing, each a kind of a generic domain error (so ``api/errors.py`` maps it)."""

from __future__ import annotations

from georeg.core.errors import InvalidInput, NotFound


class SafeNotFound(NotFound):
    """No SAFE archive (``<PRODUCT>.zip`` or ``<PRODUCT>.SAFE``) for a product under the SAFE roots."""

    code = "safe_not_found"


class InvalidSafe(InvalidInput):
    """A SAFE archive that cannot be processed: not a SAFE, unreadable metadata or rasters."""

    code = "invalid_safe"


class BrokenArchive(InvalidSafe):
    code = "broken_archive"


class MissingBand(InvalidSafe):
    """A band (S2) or measurement (S1) a product needs is absent from the SAFE."""

    code = "missing_band"


class UnsupportedProduct(InvalidInput):
    code = "unsupported_product"
