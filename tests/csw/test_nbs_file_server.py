"""The NBS-like file server: quicklook GeoTIFFs in the THREDDS layout, and the hostile routes."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from rasterio.io import MemoryFile
from rasterio.warp import transform as warp_points

from tests.csw_fixtures import NbsFileServer
from tests.nbs_catalogue import ARCHIVE_PREFIX, DISALLOWED_REDIRECT, NbsCatalogue


def test_every_written_quicklook_is_a_georeferenced_geotiff(nbs_file_server: NbsFileServer,
                                                            nbs_catalogue: NbsCatalogue) -> None:
    digests = set()
    quicklooks = [(record, relpath) for record in nbs_catalogue for relpath in record.quicklooks]
    assert len(quicklooks) >= 40
    with httpx.Client(timeout=10) as client:
        for record, relpath in quicklooks:
            url = nbs_file_server.archive_url(relpath)
            assert url in record.geotiffs
            assert relpath.startswith(record.archive_relpath.rsplit("/", 1)[0] + f"/ql/{record.title}/")
            response = client.get(url)
            assert response.status_code == 200, url
            digests.add(hashlib.sha256(response.content).hexdigest())
            with MemoryFile(response.content) as memfile, memfile.open() as dataset:
                assert dataset.driver == "GTiff" and dataset.dtypes[0] == "uint8"
                assert dataset.crs.to_string() == record.quicklook_crs
                assert dataset.count == (3 if record.platform.startswith("S2") else 2)
                west, south, east, north = record.bbox
                lon = (west + east + (360.0 if west > east else 0.0)) / 2.0
                lon = ((lon + 180.0) % 360.0) - 180.0
                (x,), (y,) = warp_points("EPSG:4326", dataset.crs, [lon], [(south + north) / 2.0])
                left, bottom, right, top = dataset.bounds
                assert left <= x <= right and bottom <= y <= top, (relpath, dataset.bounds)
    assert len(digests) == len(quicklooks), "every quicklook has its own content (duplicate detection)"
    assert {r.quicklook_crs for r in nbs_catalogue if r.quicklooks} >= {"EPSG:32661", "EPSG:32633"}


def test_records_without_quicklooks_exist(nbs_catalogue: NbsCatalogue) -> None:
    assert [r for r in nbs_catalogue.of_kind("s1") if not r.quicklooks]
    assert [r for r in nbs_catalogue.of_kind("s2") if not r.quicklooks]


def test_hostile_records_misbehave_on_their_second_geotiff(nbs_file_server: NbsFileServer,
                                                          nbs_catalogue: NbsCatalogue) -> None:
    with httpx.Client(timeout=2, follow_redirects=False) as client:
        for kind in ("redirect", "oversized", "missing", "slow"):
            (record,) = nbs_catalogue.of_kind(kind)
            good, bad = record.geotiffs
            assert client.get(good).status_code == 200
            assert f"/{ARCHIVE_PREFIX}/" in bad and bad.endswith("_VH.tif")
            if kind == "redirect":
                response = client.get(bad)
                assert response.status_code == 302
                assert response.headers["location"].startswith(DISALLOWED_REDIRECT)
            elif kind == "oversized":
                with client.stream("GET", bad) as response:
                    assert response.status_code == 200 and "content-length" not in response.headers
                    received = 0
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        if received > 1024 * 1024:
                            break
                    assert received > 1024 * 1024
            elif kind == "missing":
                assert client.get(bad).status_code == 404
            else:
                with pytest.raises(httpx.ReadTimeout):
                    client.get(bad, timeout=0.5)


def test_generic_hostile_routes(nbs_file_server: NbsFileServer) -> None:
    server = nbs_file_server
    with httpx.Client(timeout=5, follow_redirects=False) as client:
        response = client.get(server.redirect_url())
        assert response.status_code == 302 and response.headers["location"].startswith("http://169.254.0.1/")
        allowed = server.archive_url(next(r for r in server.catalogue if r.quicklooks).quicklooks[0])
        assert client.get(server.redirect_url(allowed), follow_redirects=True).status_code == 200
        with client.stream("GET", server.oversized_url(3 * 1024 * 1024)) as response:
            assert int(response.headers["content-length"]) == 3 * 1024 * 1024
            assert sum(len(chunk) for chunk in response.iter_bytes()) == 3 * 1024 * 1024
        assert client.head(server.oversized_url(10**9)).headers["content-length"] == str(10**9)
        with client.stream("GET", server.slow_url(1.0, trickle=True)) as response:
            assert response.status_code == 200
            assert sum(len(chunk) for chunk in response.iter_bytes()) == 2 * 1024
        with pytest.raises(httpx.ReadTimeout):
            client.get(server.slow_url(3.0), timeout=0.3)
        assert client.get(server.missing_url).status_code == 404
        assert client.get(server.url(ARCHIVE_PREFIX + "/S1A/")).status_code == 404  # no directory listings
        assert client.post(server.url("anything")).status_code == 405
    assert ("GET", "/" + ARCHIVE_PREFIX + "/S1A/") in server.requests


def test_files_written_under_the_archive_root_are_served(nbs_file_server: NbsFileServer) -> None:
    record = nbs_file_server.catalogue.of_kind("s1")[0]
    path = nbs_file_server.archive_root / record.archive_relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PK\x05\x06" + bytes(18))
    try:
        response = httpx.get(record.references[0].url, timeout=5)
        assert response.status_code == 200 and response.content.startswith(b"PK")
    finally:
        path.unlink()
    assert httpx.get(record.references[0].url, timeout=5).status_code == 404
