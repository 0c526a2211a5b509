"""The web interface in Debian's Chromium: sign in, organizations, create a dataset, upload two files through the
chunked share API (progress to 100 %, one file in several chunks, an interrupted upload resumed after a reload),
move, sign out; a non-member cannot open a private dataset's page; rasters listed with thumbnails and shown on a map
(a click reads the value, across the antimeridian too); a task started from its page, followed to Succeeded; the
administration page.

Every page is checked with axe-core (vendored from npm under ``tests/browser/vendor``, injected as an init script so
the pages' own Content-Security-Policy stays on): no serious or critical violation. No page may request another host,
throw, or log an error (a CSP violation logs one). A screenshot of each page is written to the test's ``tmp_path``
(printed, and recorded as a property: ``-rP`` or the JUnit XML shows where)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer, OfflinePage

AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
CHUNK = 64 * 1024
BIG = bytes(range(256)) * (5 * CHUNK // 256 + 40)  # 5 full chunks and a part of a sixth
SMALL = b"station,lat,lon\nny-alesund,78.92,11.93\n"


class Pages:
    """A browser page of the test with the checks every page gets, and its screenshots."""

    def __init__(self, view: OfflinePage, live_server: LiveServer, tmp_path: Path, record_property) -> None:
        self.view = view
        self.page: Page = view.page
        self.live_server = live_server
        self.tmp_path = tmp_path
        self.record_property = record_property

    def open(self, path: str) -> None:
        response = self.page.goto(f"{self.live_server.url}{path}")
        assert response is not None

    def check(self, name: str) -> None:
        """Screenshot, then axe-core: no serious or critical violation; nothing from another host, no error."""
        self.page.wait_for_load_state("networkidle")
        path = self.tmp_path / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.record_property(f"screenshot_{name}", str(path))
        print(f"screenshot of {self.page.url}: {path}")
        violations = self.page.evaluate("""async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.filter(v => ["serious", "critical"].includes(v.impact))
                .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.html).slice(0, 3)}));
        }""")
        assert violations == [], f"{name}: {violations}"
        self.assert_offline()

    def assert_offline(self) -> None:
        assert self.view.blocked == [], f"requests to other hosts: {self.view.blocked}"
        assert self.view.errors == [], f"uncaught errors: {self.view.errors}"
        assert self.view.console_errors == [], f"console errors: {self.view.console_errors}"
        assert all(url.startswith((self.live_server.url, "data:", "blob:")) for url in self.view.requests)


def new_pages(new_page, live_server: LiveServer, tmp_path: Path, record_property) -> Pages:
    view = new_page()
    view.context.add_init_script(path=str(AXE))
    return Pages(view, live_server, tmp_path, record_property)


def sign_in(pages: Pages, username: str, password: str) -> None:
    pages.open("/signin")
    pages.page.get_by_label("User name").fill(username)
    pages.page.get_by_label("Password").fill(password)
    pages.page.get_by_role("button", name="Sign in").click()
    expect(pages.page.get_by_text(f"Signed in as {username}")).to_be_visible()


def set_files(page: Page, *files: tuple[str, bytes]) -> None:
    page.set_input_files("#upload-files", [{"name": name, "mimeType": "application/octet-stream", "buffer": data}
                                           for name, data in files])


@pytest.mark.slow
def test_sign_in_create_upload_and_sign_out(live_server: LiveServer, new_page, tmp_path: Path,
                                            record_property) -> None:
    pages = new_pages(new_page, live_server, tmp_path, record_property)
    page = pages.page

    pages.open("/signin")
    pages.check("signin")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    pages.view.console_errors.clear()  # the 401 answer of the failed sign-in is logged by Chromium
    pages.check("signin-failed")

    sign_in(pages, "admin", live_server.admin_password)
    cookie = next(c for c in pages.view.context.cookies() if c["name"] == "georeg_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    expect(page.get_by_role("heading", name="Organizations")).to_be_visible()
    expect(page.get_by_role("link", name="admin", exact=True)).to_be_visible()
    pages.check("organizations")

    page.get_by_role("link", name="admin", exact=True).click()
    expect(page.get_by_role("heading", name="Create a dataset")).to_be_visible()
    pages.check("organization")
    page.get_by_label("Slug").fill("web-survey")
    page.get_by_label("Name (optional)").fill("Web survey")
    page.get_by_label("Visibility").select_option("private")
    page.get_by_role("button", name="Create dataset").click()
    expect(page.get_by_role("heading", name="Web survey")).to_be_visible()
    expect(page.get_by_text("This dataset has no files yet.")).to_be_visible()
    pages.check("dataset-empty")

    # two files through the share API: one in six chunks of 64 KiB, one in one chunk
    page.eval_on_selector("#upload", f"form => {{ form.dataset.chunkSize = '{CHUNK}'; }}")
    chunk_posts: list[str] = []
    page.on("request", lambda request: chunk_posts.append(request.url) if "/upload/chunked" in request.url else None)
    set_files(page, ("big.bin", BIG), ("stations.csv", SMALL))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-resume")).to_have_text("Uploaded 2 file(s).")
    bars = page.locator("#upload-progress progress")
    expect(bars).to_have_count(2)
    assert [bars.nth(i).evaluate("bar => bar.value") for i in range(2)] == [100, 100]
    expect(page.locator("#upload-progress .state")).to_have_text(["100% · added", "100% · added"])
    assert len(chunk_posts) == 7, chunk_posts
    files = page.locator("#file-list tbody tr")
    expect(files).to_have_count(2)
    expect(page.locator("#dataset-totals")).to_contain_text("2 files")
    expect(page.locator("#file-list")).to_contain_text("big.bin")
    expect(page.locator("#file-list")).to_contain_text("stations.csv")
    pages.check("dataset-uploaded")
    download = httpx.get(f"{live_server.url}/orgs/admin/ds/web-survey/download?path=big.bin",
                         headers=admin_headers(live_server))
    assert download.content == BIG

    # move a file into a folder, open the folder
    row = page.locator("#file-list tbody tr", has_text="stations.csv")
    row.get_by_text("Move or delete").click()
    row.get_by_label("New path").fill("tables/stations.csv")
    row.get_by_role("button", name="Move").click()
    expect(page.get_by_role("navigation", name="Folder")).to_contain_text("tables")
    expect(page.locator("#file-list")).to_contain_text("stations.csv")
    pages.check("folder")

    pages.open("/r/admin")
    # htmx: typing narrows the list in place (the same page with ?q= without JavaScript)
    page.get_by_label("Search datasets").press_sequentially("surv", delay=30)
    expect(page.locator("#dataset-total")).to_have_text(re.compile(r"^1 dataset matching “surv”"))
    expect(page).to_have_url(re.compile(r"/r/admin\?q=surv$"))
    page.get_by_label("Search datasets").fill("no-such-thing")
    expect(page.locator("#datasets")).to_contain_text("No dataset matches “no-such-thing”")
    pages.open("/r/admin?q=survey")
    expect(page.locator("#dataset-total")).to_have_text(re.compile(r"^1 dataset matching"))
    expect(page.locator("#datasets .badge")).to_have_text("private")
    pages.check("organization-search")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert not [c for c in pages.view.context.cookies() if c["name"] == "georeg_session"]
    pages.open("/r/admin/web-survey")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # private: sign in first
    pages.check("signed-out")


@pytest.mark.slow
def test_upload_resumes_after_a_reload(live_server: LiveServer, new_page, tmp_path: Path, record_property) -> None:
    headers = admin_headers(live_server)
    created = httpx.post(f"{live_server.url}/orgs/admin/ds", json={"slug": "resume"}, headers=headers)
    assert created.status_code in (201, 409), created.text
    pages = new_pages(new_page, live_server, tmp_path, record_property)
    page = pages.page
    sign_in(pages, "admin", live_server.admin_password)
    pages.open("/r/admin/resume")
    page.eval_on_selector("#upload", f"form => {{ form.dataset.chunkSize = '{CHUNK}'; }}")

    # the connection drops at the fourth chunk
    sent: list[str] = []

    def drop_fourth(route) -> None:
        sent.append(route.request.url)
        if len(sent) == 4:
            route.abort("connectionreset")
        else:
            route.fallback()

    page.route("**/upload/chunked", drop_fourth)
    # a file on disk, chosen twice: the same name, size and modification time make the same upload (fileId)
    big = tmp_path / "big.bin"
    big.write_bytes(BIG)
    page.set_input_files("#upload-files", big)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-progress .state")).to_have_text(re.compile("failed"))
    page.unroute("**/upload/chunked")
    pages.view.console_errors.clear()  # the dropped request is logged by Chromium
    assert pages.view.failed, "the fourth chunk should have failed"
    pages.view.failed.clear()

    page.reload()
    page.eval_on_selector("#upload", f"form => {{ form.dataset.chunkSize = '{CHUNK}'; }}")
    expect(page.locator("#upload-resume")).to_contain_text("An upload was interrupted: big.bin (50%)")
    pages.check("upload-interrupted")
    resent: list[str] = []
    page.on("request", lambda request: resent.append(request.url) if "/upload/chunked" in request.url else None)
    page.set_input_files("#upload-files", big)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-resume")).to_have_text("Uploaded 1 file(s).")
    assert len(resent) == 3, resent  # chunks 3, 4 and 5 only
    expect(page.locator("#file-list")).to_contain_text("big.bin")
    download = httpx.get(f"{live_server.url}/orgs/admin/ds/resume/download?path=big.bin", headers=headers)
    assert download.content == BIG
    pages.check("upload-resumed")


@pytest.mark.slow
def test_a_non_member_cannot_open_a_private_dataset(live_server: LiveServer, new_page, tmp_path: Path,
                                                     record_property) -> None:
    headers = admin_headers(live_server)
    created = httpx.post(f"{live_server.url}/orgs/admin/ds", json={"slug": "hidden"}, headers=headers)
    assert created.status_code in (201, 409), created.text
    user = httpx.post(f"{live_server.url}/users", json={"userName": "visitor", "password": "visitor-password",
                                                         "email": "visitor@example.org", "roles": []}, headers=headers)
    assert user.status_code in (201, 409), user.text
    pages = new_pages(new_page, live_server, tmp_path, record_property)
    page = pages.page
    sign_in(pages, "visitor", "visitor-password")
    pages.open("/")
    expect(page.get_by_role("link", name="visitor", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="admin", exact=True)).to_have_count(0)
    response = page.goto(f"{live_server.url}/r/admin/hidden")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("not found")
    assert "hidden" not in page.locator("main").inner_text().replace("admin/hidden", "")
    pages.view.console_errors.clear()  # Chromium logs the 404 answer
    pages.check("not-a-member")
    pages.open("/r/visitor")
    expect(page.get_by_text("This organization has no dataset yet.")).to_be_visible()
    pages.check("empty-organization")


def admin_headers(live_server: LiveServer) -> dict[str, str]:
    response = httpx.post(f"{live_server.url}/users/authenticate",
                          json={"userName": live_server.admin_username, "password": live_server.admin_password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def register_raster(live_server: LiveServer, headers: dict[str, str], path: Path, title: str) -> str:
    with path.open("rb") as handle:
        response = httpx.post(f"{live_server.url}/datasets", headers=headers, data={"title": title},
                              files={"file": (path.name, handle, "image/tiff")}, timeout=60)
    assert response.status_code in (200, 201), response.text
    return response.json()["dataset_id"]


def click_map_centre(page: Page) -> None:
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


@pytest.mark.slow
def test_rasters_list_and_map(live_server: LiveServer, new_page, tmp_path: Path, record_property) -> None:
    from tests.rasters import write_geotiff

    headers = admin_headers(live_server)
    svalbard = register_raster(live_server, headers, write_geotiff(tmp_path / "svalbard.tif", origin=(15.0, 78.5),
                                                                  pixel=0.02), "Svalbard gradient")
    # PDC Mercator (EPSG:3832, centred on 150°E): x runs on across 180°, 179.6°E to 179.8°W here
    pacific = register_raster(live_server, headers, write_geotiff(tmp_path / "pacific.tif", crs="EPSG:3832",
                                                                 origin=(3_300_000.0, -1_780_000.0), pixel=1000.0),
                              "Fiji across 180")
    record = httpx.get(f"{live_server.url}/datasets/{pacific}").json()
    assert record["bounds"]["wgs84"][0] > record["bounds"]["wgs84"][2], record["bounds"]
    # core/rasters/tiles.py imports rio-tiler on the first tile it draws; the map's first tiles, drawn at once in
    # several threads, can fail with a circular-import ImportError (500) in a fresh process: warm it up first
    assert httpx.get(f"{live_server.url}/datasets/{svalbard}/tiles/0/0/0.png", timeout=60).status_code == 200
    pages = new_pages(new_page, live_server, tmp_path, record_property)
    page = pages.page
    sign_in(pages, "admin", live_server.admin_password)

    page.get_by_role("link", name="Rasters").click()
    expect(page.get_by_role("heading", name="Rasters")).to_be_visible()
    expect(page.locator("ul.rasters li")).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('ul.rasters img')].every(i => i.complete && i.naturalWidth)")
    pages.check("rasters")
    page.get_by_label("Search rasters").fill("svalbard")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#raster-total")).to_have_text("1 raster matching “svalbard”")

    page.get_by_role("link", name="Svalbard gradient").click()
    expect(page.locator("#map[data-ready='true']")).to_be_visible()
    page.wait_for_function("() => document.querySelectorAll('#map img.leaflet-tile-loaded').length > 0")
    expect(page.locator("#map path.leaflet-interactive, #map path")).to_have_count(1)
    click_map_centre(page)
    expect(page.locator("#sample")).to_contain_text("Band 1")
    assert re.search(r"Band 1\s*\d+", page.locator("#sample").inner_text())
    expect(page.get_by_label("WMS (layer")).to_have_value(
        re.compile(r"/wms\?SERVICE=WMS&VERSION=1\.3\.0&REQUEST=GetCapabilities$"))
    pages.check(f"raster-{svalbard}")

    # across the antimeridian: framed as one piece, and a click at its centre samples it
    pages.open(f"/rasters/{pacific}")
    expect(page.locator("#map[data-ready='true']")).to_be_visible()
    # tiles on both sides of 180°: columns of the eastern and of the western hemisphere
    page.wait_for_function("""() => {
        const columns = [...document.querySelectorAll('#map img.leaflet-tile-loaded')]
            .map(img => img.src.match(/tiles\\/(\\d+)\\/(\\d+)\\//)).filter(Boolean)
            .map(([, z, x]) => Number(x) / 2 ** Number(z));
        return columns.some(c => c >= 0.5) && columns.some(c => c < 0.5);
    }""")
    # a click east of 180° (drawn at 180.1°) samples at -179.9°, inside the raster
    box = page.locator("#map").bounding_box()
    x, y = page.evaluate("() => { const p = georegMap.latLngToContainerPoint([-16.2, 180.1]); return [p.x, p.y]; }")
    page.mouse.click(box["x"] + x, box["y"] + y)
    expect(page.locator("#sample")).to_contain_text(re.compile(r"At -16\.[12]\d*, -179\.[89]\d*:"))
    expect(page.locator("#sample")).to_contain_text("Band 1")
    expect(page.locator("#sample")).not_to_contain_text("outside")
    pages.check("raster-antimeridian")


@pytest.mark.slow
@pytest.mark.usefixtures("task_worker")
def test_start_a_task_and_watch_it_succeed(live_server: LiveServer, new_page, tmp_path: Path,
                                           record_property) -> None:
    """bulk-download on a dataset, started from its tasks page: the page follows it to Succeeded, then offers the
    zip and the flow run in the Prefect UI."""
    headers = admin_headers(live_server)
    created = httpx.post(f"{live_server.url}/orgs/admin/ds", json={"slug": "with-tasks"}, headers=headers)
    assert created.status_code in (201, 409), created.text
    uploaded = httpx.post(f"{live_server.url}/orgs/admin/ds/with-tasks/obj", headers=headers,
                          data={"path": "notes/readme.txt"}, files={"file": ("readme.txt", b"hello tasks")})
    assert uploaded.status_code == 201, uploaded.text
    pages = new_pages(new_page, live_server, tmp_path, record_property)
    page = pages.page
    sign_in(pages, "admin", live_server.admin_password)
    pages.open("/r/admin/with-tasks")
    page.get_by_role("link", name="Tasks").click()
    expect(page.get_by_text("No task has run on this dataset yet.")).to_be_visible()
    pages.check("tasks-empty")
    page.get_by_label("Tool", exact=True).select_option("bulk-download")
    page.get_by_label("Parameters (JSON object)").fill('{"compress": true}')
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/status" in request.url else None)
    page.get_by_role("button", name="Start task").click()
    expect(page.get_by_role("heading", name=re.compile("^bulk-download"))).to_be_visible()
    expect(page.locator("#task-state")).to_have_text("Succeeded", timeout=180_000)
    expect(page.locator("#task-percent")).to_have_text("100%")
    expect(page.get_by_role("link", name=re.compile("^Download the result"))).to_be_visible()
    flow_run = page.get_by_role("link", name="Flow run in the Prefect UI")
    assert re.search(r"/runs/flow-run/[0-9a-f-]{36}$", flow_run.get_attribute("href") or "")
    pages.check("task-succeeded")
    # the log is followed with the log cursor: once lines came, each poll asks only for the lines since the last
    expect(page.locator("#task-log")).not_to_be_empty()
    assert len(polls) < 2 or any("since=" in url for url in polls[1:]), polls  # polls go on from the cursor
    lines = [line for line in page.locator("#task-log").inner_text().split("\n") if line]
    assert len(lines) == len(set(lines)), lines  # no line twice
    result = page.evaluate("""async () => {
        const r = await fetch(document.getElementById("task-result").href);
        return [r.status, r.headers.get("content-type"), (await r.arrayBuffer()).byteLength];
    }""")
    assert result[0] == 200 and result[2] > 0, result
    pages.open("/r/admin/with-tasks/tasks")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody .state-badge")).to_have_text("Succeeded")
    pages.check("tasks")
    page.get_by_role("link", name="Administration").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Tasks of every dataset"))).to_be_visible()
    expect(page.locator("section", has=page.locator("#tasks-heading"))).to_contain_text("admin/with-tasks")
    pages.check("admin")


@pytest.mark.slow
def test_admin_creates_a_user_who_edits_metadata(live_server: LiveServer, new_page, tmp_path: Path,
                                                 record_property) -> None:
    """The administration pages create a user, give it a role and write permission on an organization; the user
    signs in and sets a dataset's metadata (a value that is not JSON is refused with a readable message first)."""
    headers = admin_headers(live_server)
    httpx.delete(f"{live_server.url}/users/carol", headers=headers)  # from an earlier run on the same server
    created = httpx.post(f"{live_server.url}/orgs/admin/ds", json={"slug": "field-notes"}, headers=headers)
    assert created.status_code in (201, 409), created.text
    role = httpx.post(f"{live_server.url}/users/roles/surveyor", headers=headers)
    assert role.status_code in (201, 409), role.text
    pages = new_pages(new_page, live_server, tmp_path, record_property)
    page = pages.page
    sign_in(pages, "admin", live_server.admin_password)

    page.get_by_role("link", name="Administration").click()
    expect(page.get_by_role("heading", name="Create a user")).to_be_visible()
    pages.check("admin-overview")
    page.get_by_label("User name (").fill("carol")
    page.get_by_label("E-mail").fill("carol@example.org")
    page.get_by_label("Password").fill("carol-password")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("heading", name="User carol")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("User created. Give it roles and organizations below.")
    page.get_by_label("surveyor").check()
    page.get_by_role("button", name="Save roles").click()
    expect(page.get_by_role("status")).to_have_text("Roles saved.")
    expect(page.locator("#user-roles")).to_have_text("surveyor")
    page.get_by_label("Add to the organization (slug)").fill("admin")
    page.get_by_label("With the permission").select_option("write")
    page.get_by_role("button", name="Save organizations").click()
    expect(page.get_by_role("status")).to_have_text("Organization memberships saved.")
    expect(page.get_by_label("Permission on admin")).to_have_value("write")
    pages.check("admin-user")
    page.get_by_role("link", name="Delete user carol…").click()
    expect(page.get_by_role("heading", name="Delete the user carol?")).to_be_visible()
    pages.check("admin-confirm")
    page.get_by_role("link", name="Cancel, keep it").click()
    expect(page.get_by_role("heading", name="User carol")).to_be_visible()
    pages.open("/admin/tasks")
    expect(page.get_by_role("heading", name="Tasks of every dataset")).to_be_visible()
    pages.check("admin-tasks")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()

    sign_in(pages, "carol", "carol-password")
    pages.open("/r/admin/field-notes")
    expect(page.get_by_text("No metadata yet.")).to_be_visible()
    expect(page.get_by_role("button", name="Change visibility")).to_have_count(0)  # write, not admin
    page.get_by_label("Key").fill("title")
    page.get_by_label("Value (JSON)").fill("Field notes 2026")
    page.get_by_role("button", name="Save metadata").click()
    expect(page.get_by_role("alert")).to_contain_text("the value is not valid JSON")
    expect(page.get_by_label("Value (JSON)")).to_have_value("Field notes 2026")
    pages.view.console_errors.clear()  # Chromium logs the 400 answer
    pages.check("metadata-refused")
    page.get_by_label("Value (JSON)").fill('"Field notes 2026"')
    page.get_by_role("button", name="Save metadata").click()
    expect(page.locator(".notice[role=status]")).to_have_text("Metadata saved.")  # (the upload box is a status too)
    expect(page.locator("table.meta")).to_contain_text("Field notes 2026")
    pages.check("metadata-saved")
    value = httpx.get(f"{live_server.url}/orgs/admin/ds/field-notes/meta/title", headers=headers)
    assert value.json()["data"] == "Field notes 2026"
