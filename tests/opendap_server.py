"""A THREDDS-like test server: xpublish + xpublish-opendap (DAP2) and a plain file server, in its own process.

    python tests/opendap_server.py --port 8123 --root <dir> name=<file.nc> ...

- ``/thredds/dodsC/<name>`` (``.dds``, ``.das``, ``.dods``, ``.html``): each NetCDF file as an OPeNDAP dataset,
  its variables and attributes served as stored (packed values, ``_FillValue``, ``scale_factor``) like TDS does.
  The same datasets answer under ``/opendap/hyrax/<name>`` (Hyrax-style: a DAP URL that ends in ``.nc``).
- ``/thredds/fileServer/<path>``: the files under ``--root`` (downloads).
- ``/redirect/<host>/<path>``: a 302 to ``http://<host>/<path>`` (redirect checks); ``/health``: 200 once up.

xpublish-opendap 0.2 turns every variable into a DAP Grid and types attributes loosely; two adjustments make it
answer like THREDDS: scalar variables (CF grid mappings) are DAP base types, numpy-typed attributes keep their
type, and unsigned integers carry ``_Unsigned = "true"`` (DAP2 clients see them as signed).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import numpy as np

DAP_SUFFIXES = (".dds", ".das", ".dods")
DAP_PREFIXES = ("/thredds/dodsC/", "/opendap/hyrax/")


def patch_xpublish_opendap() -> None:
    """Serve 0-d variables as DAP atoms and keep numpy attribute types (see the module docstring)."""
    import opendap_protocol as dap
    from xpublish_opendap import dap_xarray

    original_grid = dap_xarray.dap_grid
    original_attribute = dap_xarray.dap_attribute
    types = {np.dtype(kind): atom for kind, atom in ((np.uint8, dap.Byte), (np.int16, dap.Int16),
                                                     (np.uint16, dap.UInt16), (np.int32, dap.Int32),
                                                     (np.uint32, dap.UInt32), (np.float32, dap.Float32),
                                                     (np.float64, dap.Float64))}

    def grid(da, dims):
        if da.ndim:
            return original_grid(da, dims)
        atom = dap_xarray.dap_dtype(da)(value=da.values.item(), name=da.name)
        for key, value in da.attrs.items():
            atom.append(dap_xarray.dap_attribute(key, value))
        return atom

    def attribute(key, value):
        if isinstance(value, (np.generic, np.ndarray)) and np.asarray(value).dtype in types:
            values = np.atleast_1d(value)
            return dap.Attribute(name=key, value=", ".join(str(item) for item in values.tolist()),
                                 dtype=types[values.dtype])
        return original_attribute(key, value)

    dap_xarray.dap_grid = grid
    dap_xarray.dap_attribute = attribute


def load(path: Path):
    """The file as stored: no CF decoding, so packed values and their attributes pass through."""
    import xarray as xr

    dataset = xr.open_dataset(path, decode_cf=False, mask_and_scale=False, decode_times=False).load()
    for name, variable in dataset.variables.items():
        if variable.dtype.kind == "u" and variable.dtype.itemsize > 1:
            dataset[name].attrs["_Unsigned"] = "true"
    return dataset


class ThreddsPaths:
    """ASGI wrapper mapping ``/thredds/dodsC/<name>[.dds|.das|.dods]`` (and Hyrax's ``/opendap/hyrax/<name>…``)
    onto xpublish's dataset routes."""

    def __init__(self, app, names: set[str]) -> None:
        self.app, self.names = app, names

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        prefix = next((item for item in DAP_PREFIXES if path.startswith(item)), None)
        if scope["type"] == "http" and prefix:
            name, suffix = path[len(prefix):], ""
            for candidate in DAP_SUFFIXES:
                if name.endswith(candidate):
                    name, suffix = name[: -len(candidate)], candidate
            if name in self.names and suffix:
                target = f"/datasets/{name}/opendap{suffix}"
                scope = {**scope, "path": target, "raw_path": target.encode()}
        await self.app(scope, receive, send)


def build_app(datasets: dict[str, Path], root: Path):
    import xpublish
    from fastapi.responses import PlainTextResponse, RedirectResponse
    from fastapi.staticfiles import StaticFiles
    from xpublish_opendap import OpenDapPlugin

    patch_xpublish_opendap()
    rest = xpublish.Rest({name: load(path) for name, path in datasets.items()}, plugins={"opendap": OpenDapPlugin()})
    app = rest.app

    @app.get("/health")
    def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/redirect/{target:path}")
    def redirect(target: str) -> RedirectResponse:
        return RedirectResponse(f"http://{target}", status_code=302)

    app.mount("/thredds/fileServer", StaticFiles(directory=root), name="files")
    return ThreddsPaths(app, set(datasets))


def exit_with_parent(interval: float = 1.0) -> None:
    """Stop when the process that started the server is gone (a killed test run leaves no server behind)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("datasets", nargs="*", help="name=path.nc")
    args = parser.parse_args(argv)
    datasets = dict(item.split("=", 1) for item in args.datasets)
    app = build_app({name: Path(path) for name, path in datasets.items()}, args.root)
    exit_with_parent()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
