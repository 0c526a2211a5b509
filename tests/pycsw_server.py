"""Run a real pycsw 2.6 CSW server for the tests (runs under the pycsw virtualenv, never georeg's).

Usage: ``.venv-pycsw/bin/python tests/pycsw_server.py --records DIR --workdir DIR --port-file FILE``

Creates ``<workdir>/pycsw.cfg`` and a SQLite repository ``<workdir>/records.db`` with pycsw-admin's
``setup_db`` and ``load_records`` (the functions ``pycsw-admin.py -c setup_db|load_records`` call), then
serves ``pycsw.wsgi.application`` at ``http://HOST:PORT/csw`` with a threaded wsgiref server on a free
port. The port is written to the port file (atomically) once the server accepts requests. ``--check`` only
imports pycsw and prints its version. Only the standard library and pycsw are imported: this file must not
import anything from georeg.

Two deviations from a stock deployment, both for the tests' sake: gzip is off (pycsw 2.6's WSGI wrapper sends
the uncompressed Content-Length with a compressed body) and SQLite runs with ``synchronous=OFF`` (the
repository is thrown away). ``pkg_resources``, which pycsw imports only for its version, is answered from
``importlib.metadata`` so the venv needs no setuptools.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import threading
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref server answering each request in its own thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class QuietHandler(WSGIRequestHandler):
    """One short access-log line per request on stderr."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def write_config(path: Path, url: str, database: str, maxrecords: int) -> None:
    """A pycsw configuration with the ISO application profile (apiso) enabled and transactions off."""
    config = configparser.ConfigParser(interpolation=None)
    config["server"] = {
        "home": str(path.parent),
        "url": url,
        "mimetype": "application/xml; charset=UTF-8",
        "encoding": "UTF-8",
        "language": "en-US",
        "maxrecords": str(maxrecords),
        "loglevel": "WARNING",
        "logfile": "",
        "pretty_print": "false",
        "domainquerytype": "list",
        "domaincounts": "false",
        "profiles": "apiso",
    }
    config["manager"] = {"transactions": "false", "allowed_ips": "127.0.0.1"}
    config["metadata:main"] = {
        "identification_title": "georeg test catalogue (NBS-like)",
        "identification_abstract": "pycsw loaded with synthetic records in the shapes of the NBS Sentinel catalogue",
        "identification_keywords": "Sentinel,NBS,test",
        "identification_keywords_type": "theme",
        "identification_fees": "None",
        "identification_accessconstraints": "None",
        "provider_name": "georeg tests",
        "provider_url": url,
        "contact_name": "georeg tests",
        "contact_position": "tester",
        "contact_address": "-",
        "contact_city": "-",
        "contact_stateorprovince": "-",
        "contact_postalcode": "-",
        "contact_country": "Norway",
        "contact_phone": "-",
        "contact_fax": "-",
        "contact_email": "tests@example.org",
        "contact_url": url,
        "contact_hours": "-",
        "contact_instructions": "-",
        "contact_role": "pointOfContact",
    }
    config["repository"] = {"database": database, "table": "records"}
    config["metadata:inspire"] = {"enabled": "false"}
    with path.open("w") as handle:
        config.write(handle)


def _pkg_resources_shim() -> None:
    """pycsw 2.6 imports pkg_resources only to read its own version; answer that with importlib.metadata
    (setuptools' pkg_resources scans every installed distribution at import and is gone from setuptools 81+)."""
    import importlib.metadata
    import types

    shim = types.ModuleType("pkg_resources")
    shim.require = lambda name: [types.SimpleNamespace(version=importlib.metadata.version(name))]
    sys.modules.setdefault("pkg_resources", shim)


def _unsynced_sqlite() -> None:
    """The repository is thrown away after the tests: no fsync per statement (setup_db autocommits ~55 DDL
    statements and load_records commits once per record, ~15 ms each on a plain disk)."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    @event.listens_for(Pool, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous=OFF")


def _exit_with_parent(server: WSGIServer, parent: int) -> None:
    """Stop serving when the process that started us is gone (a killed test run leaves no server behind)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    server.shutdown()


def load_repository(config_path: Path, records: Path) -> int:
    """setup_db + load_records as pycsw-admin does; fails unless every XML file was loaded."""
    from pycsw.core import admin
    from pycsw.core.config import StaticContext

    config = configparser.ConfigParser(interpolation=None)
    config.read(config_path)
    database = config.get("repository", "database")
    table = config.get("repository", "table")
    admin.setup_db(database, table, config.get("server", "home"))
    loaded = admin.load_records(StaticContext(), database, table, str(records), False, False)
    expected = sorted(str(p) for p in records.glob("*.xml"))
    missing = sorted(set(expected) - set(loaded))
    if missing:
        raise SystemExit(f"pycsw could not load {len(missing)} of {len(expected)} records: {missing}")
    return len(loaded)


def main(argv: list[str] | None = None) -> None:
    """Build the repository, then serve pycsw until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=Path, help="directory of ISO 19139 XML files")
    parser.add_argument("--workdir", type=Path, help="where the config and SQLite file go")
    parser.add_argument("--port-file", type=Path, help="written with the port once serving")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--maxrecords", type=int, default=100)
    parser.add_argument("--check", action="store_true", help="only check that pycsw imports, print its version")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    _pkg_resources_shim()
    from pycsw import __version__
    from pycsw.core import admin  # noqa: F401
    from pycsw.wsgi import application

    if args.check:
        print(f"pycsw {__version__}")
        return
    if not (args.records and args.workdir and args.port_file):
        parser.error("--records, --workdir and --port-file are required")
    _unsynced_sqlite()
    imported = time.perf_counter()

    def app(environ: dict, start_response):
        """pycsw.wsgi.application without gzip (pycsw 2.6 keeps the uncompressed Content-Length)."""
        environ.pop("HTTP_ACCEPT_ENCODING", None)
        return application(environ, start_response)

    server = make_server(args.host, 0, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    port = server.server_address[1]
    args.workdir.mkdir(parents=True, exist_ok=True)
    config_path = args.workdir / "pycsw.cfg"
    database = f"sqlite:///{(args.workdir / 'records.db').resolve()}"
    write_config(config_path, f"http://{args.host}:{port}/csw", database, args.maxrecords)
    os.environ["PYCSW_CONFIG"] = str(config_path)
    count = load_repository(config_path, args.records)
    loaded = time.perf_counter()
    sys.stderr.write(
        f"pycsw {__version__}: imports {imported - started:.2f}s, setup_db + load_records {loaded - imported:.2f}s "
        f"({count} records), {time.process_time():.2f}s CPU, serving http://{args.host}:{port}/csw\n"
    )
    sys.stderr.flush()
    threading.Thread(target=_exit_with_parent, args=(server, os.getppid()), daemon=True).start()
    partial = args.port_file.with_suffix(".partial")
    partial.write_text(str(port))
    partial.replace(args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
