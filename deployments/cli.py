"""The ``georeg`` command line.

One machine: ``georeg serve``. Scaled out, each process its own command, all configured by the same
``GEOREG_*`` settings: ``georeg migrate`` and ``georeg deploy`` once per release, ``georeg api`` behind a
proxy, ``georeg worker`` on every machine that runs flows, against one Prefect server. The scale-out
commands take the Prefect API from ``GEOREG_PREFECT_API_URL``, else from ``PREFECT_API_URL``.
"""

from __future__ import annotations

import argparse
import os
import sys

from georeg.core import __version__

SCALE_OUT_COMMANDS = ("api", "worker", "deploy")
LONG_RUNNING_COMMANDS = ("serve", "api", "worker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="georeg", description="georeg geospatial registry")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the embedded stack: Prefect server, worker and API")
    api = commands.add_parser("api", help="run only the API (uvicorn), against GEOREG_PREFECT_API_URL")
    api.add_argument("--host", help="address to listen on (default: GEOREG_API_HOST)")
    api.add_argument("--port", type=int, help="port to listen on (default: GEOREG_API_PORT)")
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    worker = commands.add_parser(
        "worker", help="run a Prefect worker on the georeg work pool (and its flow-run fork server), supervised")
    worker.add_argument("--limit", type=int, help="flow runs at once (default: GEOREG_WORK_POOL_CONCURRENCY)")
    worker.add_argument("--name", help="worker name (default: georeg-<host>-<pid>)")
    commands.add_parser("migrate", help="create/upgrade the registry database and the admin user")
    commands.add_parser("deploy", help="register the work pool and every prefect.yaml deployment on PREFECT_API_URL")
    commands.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    if args.command == "version":
        print(__version__)
        return 0

    from georeg.core.config import SettingsError, load_settings

    if args.command in SCALE_OUT_COMMANDS and not os.environ.get("GEOREG_PREFECT_API_URL") \
            and os.environ.get("PREFECT_API_URL"):
        # the Prefect API Prefect's own tools use, also for the API's app factory and the worker's runs
        os.environ["GEOREG_PREFECT_API_URL"] = os.environ["PREFECT_API_URL"]
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"georeg: {exc}", file=sys.stderr)
        return 2
    if args.command in LONG_RUNNING_COMMANDS:
        from georeg.deployments.processes import cap_malloc_arenas

        cap_malloc_arenas()
    if args.command == "serve":
        from georeg.deployments.supervisor import serve

        return serve(settings)
    if args.command == "api":
        import uvicorn

        # the app factory reads the same GEOREG_* settings in each worker process
        uvicorn.run("georeg.api.app:create_app", factory=True, host=args.host or settings.api_host,
                    port=args.port or settings.api_port, workers=max(args.workers, 1))
        return 0
    if args.command == "worker":
        from georeg.deployments.supervisor import run_worker

        return run_worker(settings, name=args.name, limit=args.limit)
    if args.command == "migrate":
        from georeg.core.bootstrap import bootstrap
        from georeg.core.db import make_engine

        engine = make_engine(settings.effective_database_url)
        report = bootstrap(settings, engine)
        engine.dispose()
        if report.generated_password:
            print(f"admin user {report.admin_username!r} created with password: {report.generated_password}")
        print("registry database is up to date")
        return 0
    if args.command == "deploy":
        from georeg.deployments.prefect_setup import (
            SetupError,
            find_project_dir,
            register_all,
            wait_for_api,
        )

        settings.prefect_home.mkdir(parents=True, exist_ok=True)
        api_url = settings.effective_prefect_api_url
        try:
            wait_for_api(api_url, timeout=120)  # started next to a Prefect server that may still be starting
            registration = register_all(
                api_url, work_pool=settings.work_pool, project_dir=find_project_dir(settings.project_dir),
            )
        except SetupError as exc:
            print(f"georeg deploy failed: {exc}", file=sys.stderr)
            return 1
        print(f"registered on {api_url}: {', '.join(registration.names)}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
