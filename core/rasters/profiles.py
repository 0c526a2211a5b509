"""Per-platform profiles of the Sentinel families: metadata defaults, preferred products, point-query
variable defaults and SAFE processing defaults. ``GET /datasets/profiles`` lists them; every NBS route's
response carries the profile of the record's platform."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from pydantic import BaseModel, Field

PLATFORM_PATTERN = re.compile(r"\b(S[1-3][A-D]?|S5P)(?=[_\-.]|\b)", re.IGNORECASE)


def detect_platform(*texts: str | None) -> str | None:
    """Sentinel platform (S1A..S1D, S2A..S2C, S3, S5P) from identifiers, titles or URLs, first match wins;
    a file name is looked at before the rest of its path."""
    for text in texts:
        if text:
            match = PLATFORM_PATTERN.search(PurePosixPath(text).name) or PLATFORM_PATTERN.search(text)
            if match:
                return match.group(1).upper()
    return None


class Profile(BaseModel):
    id: str
    title: str
    family: str
    platforms: list[str]
    metadata_defaults: dict = Field(default_factory=dict)
    preferred_products: list[str] = Field(default_factory=list)
    point_query_variables: list[str] = Field(default_factory=list)
    processing: dict = Field(default_factory=dict)

    def matches(self, platform: str | None) -> bool:
        return platform is not None and platform.upper().startswith(self.family)


S2_PRODUCTS = ["true_color_vegetation", "false_color_glacier", "false_color_vegetation"]

PROFILES: tuple[Profile, ...] = (
    Profile(
        id="sentinel-1", title="Sentinel-1 C-band SAR (GRD)", family="S1", platforms=["S1A", "S1B", "S1C", "S1D"],
        metadata_defaults={"instrument": "C-SAR", "product_type": "GRD", "units": "amplitude"},
        preferred_products=["quicklook", "amplitude"],
        point_query_variables=["Amplitude_VH", "Amplitude_VV"],
        processing={"target_crs": "EPSG:32661", "resolution": 40.0, "resampling": "thin-plate-spline",
                    "stretch_percentiles": [1.0, 99.0], "polarisations": ["VV", "VH", "HH", "HV"]},
    ),
    Profile(
        id="sentinel-2", title="Sentinel-2 MSI (L1C/L2A)", family="S2", platforms=["S2A", "S2B", "S2C"],
        metadata_defaults={"instrument": "MSI", "product_type": "L2A"},
        preferred_products=list(S2_PRODUCTS),
        point_query_variables=["B04", "B03", "B02"],
        processing={"products": list(S2_PRODUCTS), "resolution": 10.0, "stretch_percentiles": [0.5, 99.5],
                    "gamma": 0.7},
    ),
    Profile(id="sentinel-3", title="Sentinel-3 (OLCI/SLSTR/SRAL)", family="S3", platforms=["S3", "S3A", "S3B"],
            metadata_defaults={"instrument": "OLCI"}),
    Profile(id="sentinel-5p", title="Sentinel-5P TROPOMI", family="S5P", platforms=["S5P"],
            metadata_defaults={"instrument": "TROPOMI"}),
)
GENERIC = Profile(id="generic", title="Generic CSW record", family="", platforms=[])


def profile_for(platform: str | None) -> Profile:
    """The profile of a platform (``generic`` when it is unknown)."""
    for profile in PROFILES:
        if profile.matches(platform):
            return profile
    return GENERIC


def all_profiles() -> list[Profile]:
    return [*PROFILES, GENERIC]


class ProfileList(BaseModel):
    total: int
    items: list[Profile]
