"""Sentinel SAFE processing: locate a product's SAFE under the NBS archive roots, plan, and write S1 GRD
amplitude quicklooks and S2 L1C/L2A RGB combinations as Cloud-Optimized GeoTIFFs."""

from georeg.core.sentinel.archive import SafeArchive
from georeg.core.sentinel.models import (
    S2_COMBINATIONS,
    BandStretch,
    PlannedOutput,
    SafeOutput,
    SafeParameters,
    SafePlan,
    parameters_from_profile,
)
from georeg.core.sentinel.pipeline import execute, prepare, process_safe
from georeg.core.sentinel.products import ProductName, find_safe, locate_safe, parse_product, resolve_safe_path

__all__ = [
    "S2_COMBINATIONS", "BandStretch", "PlannedOutput", "ProductName", "SafeArchive", "SafeOutput",
    "SafeParameters", "SafePlan", "execute", "find_safe", "locate_safe", "parameters_from_profile", "parse_product",
    "prepare", "process_safe", "resolve_safe_path",
]
