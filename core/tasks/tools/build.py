"""``build``: the derived artifacts of a buildable entry, written under ``<data>/builds/<sha256>/``.

Georeferenced rasters get a Cloud Optimized GeoTIFF at ``cog/cog.tif`` (rio-cogeo, validated after writing);
LAS/LAZ point clouds a COPC file at ``copc/cloud.copc.laz`` (octree built by
:func:`~georeg.core.pointclouds.copc.write_copc`, written with copclib, read back with copclib and laspy before it
is kept). Other entries, point clouds that are not LAS/LAZ (PLY) included, are ``422 not_buildable``. Artifacts are
keyed by content hash: an entry moved or copied keeps its build, and a new version of a file gets a new one.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field
from sqlmodel import Session

from georeg.core.config import Settings
from georeg.core.errors import InvalidInput, InvalidParameters
from georeg.core.models import Dataset, Entry, EntryType, Permission
from georeg.core.pointclouds.copc import write_copc
from georeg.core.pointclouds.readers import LAS_SUFFIXES
from georeg.core.registry import entries as entry_repo
from georeg.core.registry.artifacts import BUILD_TOOL_ID, artifact_file, build_dir
from georeg.core.registry.objects import entry_files
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome

COG_ARTIFACT = "cog/cog.tif"
COPC_ARTIFACT = "copc/cloud.copc.laz"
BUILDABLE = {EntryType.raster.value: COG_ARTIFACT, EntryType.pointcloud.value: COPC_ARTIFACT}


class NotBuildable(InvalidParameters):
    code = "not_buildable"


class BuildParams(BaseModel):
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="the entry's content hash when the build was asked for")


def is_las(entry: Entry) -> bool:
    """Whether a point-cloud entry is a LAS/LAZ file (by its name: the build checks the content)."""
    return PurePosixPath(entry.path).suffix.lower() in LAS_SUFFIXES


def is_buildable(entry: Entry) -> bool:
    """Georeferenced rasters and LAS/LAZ point clouds (georeferenced or not: a COPC needs no CRS), with a hash."""
    if entry.type not in BUILDABLE or not entry.sha256:
        return False
    if entry.type == EntryType.pointcloud.value:
        return is_las(entry)
    return bool((entry.properties or {}).get("wgs84_bounds")) or entry.footprint is not None


def buildable_artifact(entry: Entry) -> str:
    """The artifact a build of ``entry`` writes (``422 not_buildable`` for other entries)."""
    if not is_buildable(entry):
        if entry.type == EntryType.raster.value and entry.sha256:
            raise NotBuildable(f"{entry.path!r} is not georeferenced: nothing to build")
        raise NotBuildable(f"{entry.path!r} is a {entry.type} entry: only georeferenced rasters (COG) and LAS/LAZ "
                           "point clouds (COPC) are built")
    return BUILDABLE[entry.type]


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
    target, work_dir = artifact_file(context.settings, entry.sha256, artifact), context.work_dir / "build"
    context.progress(5, "building", artifact)
    if artifact == COPC_ARTIFACT:
        report = write_copc(source, target, work_dir, progress=context.progress)
    else:
        report = write_cog(source, target, work_dir)
    context.progress(100, "built", artifact)
    return ToolOutcome(result={"hash": entry.sha256, "path": entry.path, "artifacts": [artifact], **report})


BUILD = Tool(id=BUILD_TOOL_ID, version="1.1.0", title="Build",
             description="Build the cloud-optimized copy of an entry, under its content hash: a Cloud Optimized "
             "GeoTIFF of a georeferenced raster (cog/cog.tif), a COPC file of a LAS/LAZ point cloud "
             "(copc/cloud.copc.laz).", parameters=BuildParams, run=run_build,
             required_access=Permission.write, needs_path=True)
