"""csw-search overhead: ``POST /datasets/csw-search`` through the georeg API vs a direct OWSLib ``getrecords2``
with the same filter, sort and page size, on the same real pycsw server (loaded with the 40 NBS-shaped records
of the tests). Both are timed from the client, median of ``BENCH_CSW_ROUNDS`` (default 40) alternating rounds
after a warm-up, for two queries: a filtered page (keyword + time + bbox) and a full 25-record page.

The ratio is georeg median / OWSLib median; the target is <= 1.3.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench._common import check, env_int, running_api

TARGET_RATIO = 1.3
QUERIES = {
    "filtered": {"keywords": ["Sentinel-1"], "start_datetime": "2026-01-01T00:00:00Z",
                 "bbox": {"minx": 5, "miny": 58, "maxx": 30, "maxy": 72}, "limit": 25},
    "page of 25": {"limit": 25, "offset": 10},
}


def _owslib_call(url: str, body: dict):
    from owslib import fes
    from owslib.catalogue.csw2 import CatalogueServiceWeb

    from georeg.core.catalog.csw import GMD, SORT_PROPERTY, CswQuery, build_constraints

    constraints = build_constraints(CswQuery(**body))
    sort = fes.SortBy([fes.SortProperty(SORT_PROPERTY, "ASC")])

    def call() -> int:
        csw = CatalogueServiceWeb(url, skip_caps=True, timeout=30)
        csw.getrecords2(constraints=[fes.And(constraints)] if len(constraints) > 1 else constraints, sortby=sort,
                        typenames="gmd:MD_Metadata", esn="full", outputschema=GMD,
                        startposition=body.get("offset", 0) + 1, maxrecords=body["limit"])
        return len(csw.records)

    return call


def run() -> dict:
    from tests.csw_fixtures import running_file_server, running_pycsw
    from tests.pycsw_venv import ensure_pycsw_venv

    rounds = env_int("BENCH_CSW_ROUNDS", 40)
    results: dict = {"target_ratio": TARGET_RATIO, "rounds": rounds, "queries": {}}
    with tempfile.TemporaryDirectory(prefix="georeg-bench-csw-") as raw:
        tmp = Path(raw)
        with running_file_server(tmp / "files") as files, \
                running_pycsw(ensure_pycsw_venv(), files.catalogue, tmp / "pycsw") as pycsw, \
                running_api(tmp, env={"GEOREG_CSW_ENDPOINTS": pycsw.url}) as api, \
                httpx.Client(base_url=api, timeout=60) as client:
            for name, body in QUERIES.items():
                direct = _owslib_call(pycsw.url, body)

                def through_api(body: dict = body) -> int:
                    return len(check(client.post("/datasets/csw-search", json=body), "csw-search").json()["items"])

                assert direct() == through_api(), "both ways must return the same page"
                timings: dict[str, list[float]] = {"owslib": [], "georeg": []}
                for _ in range(rounds):
                    for label, call in (("owslib", direct), ("georeg", through_api)):
                        started = time.perf_counter()
                        call()
                        timings[label].append(time.perf_counter() - started)
                owslib_ms = 1000 * statistics.median(timings["owslib"])
                georeg_ms = 1000 * statistics.median(timings["georeg"])
                ratio = georeg_ms / owslib_ms
                verdict = "OK" if ratio <= TARGET_RATIO else "MISSED"
                print(f"{name:12s}: OWSLib {owslib_ms:7.1f} ms  georeg {georeg_ms:7.1f} ms  "
                      f"ratio {ratio:.2f} (target <= {TARGET_RATIO})  {verdict}", flush=True)
                results["queries"][name] = {"owslib_ms": round(owslib_ms, 2), "georeg_ms": round(georeg_ms, 2),
                                            "ratio": round(ratio, 3), "met": ratio <= TARGET_RATIO}
    results["met"] = all(query["met"] for query in results["queries"].values())
    return results
