"""``build``: the derived artifacts of a buildable entry, written under ``<data>/builds/<sha256>/``.

Georeferenced rasters get a Cloud Optimized GeoTIFF at ``cog/cog.tif`` (rio-cogeo, validated after writing).
Point clouds would get COPC at ``copc/cloud.copc.laz``; no library here writes COPC from Python without building
the octree by hand, so they are not buildable yet (``400 not_buildable``). Artifacts are keyed by content hash:
an entry moved or copied keeps its build, and a new version of a file gets a new one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, Field
from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import InvalidInput, InvalidParameters
from georeg.core.models import Dataset, Entry, EntryType, Permission
from georeg.core.registry import entries as entry_repo
from georeg.core.registry.objects import entry_files
from georeg.core.storage import resolve_inside
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome

BUILDS_DIR = "builds"
COG_ARTIFACT = "cog/cog.tif"
BUILDABLE = {EntryType.raster.value: COG_ARTIFACT}


class NotBuildable(InvalidParameters):
    code = "not_buildable"


class BuildParams(BaseModel):
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="the entry's content hash when the build was asked for")


def builds_root(settings: Settings) -> Path:
    return settings.resolved_data_dir / BUILDS_DIR


def build_dir(settings: Settings, sha256: str) -> Path:
    """Where the artifacts of content ``sha256`` live."""
    return builds_root(settings) / sha256


def artifact_file(settings: Settings, sha256: str, path: str) -> Path:
    """The artifact ``path`` of build ``sha256``, kept inside its folder (``400`` for a path leaving it)."""
    return resolve_inside(build_dir(settings, sha256), path)


def buildable_artifact(entry: Entry) -> str:
    """The artifact a build of ``entry`` writes (``422 not_buildable`` for other entries)."""
    artifact = BUILDABLE.get(entry.type)
    if artifact is None or not entry.sha256:
        raise NotBuildable(f"{entry.path!r} is a {entry.type} entry: only georeferenced rasters are built (COG)")
    if not (entry.properties or {}).get("wgs84_bounds") and entry.footprint is None:
        raise NotBuildable(f"{entry.path!r} is not georeferenced: nothing to build")
    return artifact


def is_built(settings: Settings, entry: Entry) -> bool:
    artifact = BUILDABLE.get(entry.type)
    return bool(artifact and entry.sha256 and (build_dir(settings, entry.sha256) / artifact).is_file())


def write_cog(source: Path, target: Path, work_dir: Path) -> dict:
    """``source`` as a validated COG at ``target`` (written aside, then renamed); rio-cogeo's validation report."""
    from rio_cogeo.cogeo import cog_translate, cog_validate  # rio-cogeo loads its profiles: only where builds run
    from rio_cogeo.profiles import cog_profiles

    work_dir.mkdir(parents=True, exist_ok=True)
    partial = work_dir / "cog.tif"
    cog_translate(str(source), str(partial), cog_profiles.get("deflate"), in_memory=False, quiet=True,
                  config={"GDAL_TIFF_OVR_BLOCKSIZE": "512"})
    valid, errors, warnings = cog_validate(str(partial))
    if not valid:
        raise InvalidInput(f"the COG written is not valid: {'; '.join(errors)}", code="build_invalid")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(partial, target)
    return {"valid": valid, "warnings": warnings}


def run_build(context: ToolContext, params: BuildParams) -> ToolOutcome:
    with Session(context.engine) as session:
        dataset = session.get(Dataset, context.dataset_id)
        entry = entry_repo.get_entry(session, dataset=dataset, path=context.path)
        source = entry_files(session, context.settings, context.dataset_root, [entry])[entry.path]
    if entry.sha256 != params.hash:
        context.logger.info("%s changed since the build was asked for; building its current content", entry.path)
    artifact = buildable_artifact(entry)
    context.progress(5, "building", artifact)
    report = write_cog(source, artifact_file(context.settings, entry.sha256, artifact), context.work_dir / "build")
    context.progress(100, "built", artifact)
    return ToolOutcome(result={"hash": entry.sha256, "path": entry.path, "artifacts": [artifact], **report})


BUILD = Tool(id="build", version="1.0.0", title="Build", description="Build a Cloud Optimized GeoTIFF of a raster "
             "entry (cog/cog.tif under the entry's content hash).", parameters=BuildParams, run=run_build,
             required_access=Permission.write, needs_path=True)
