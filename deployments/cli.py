"""The ``georeg`` command line."""

from __future__ import annotations

import argparse
import sys

from georeg.core import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="georeg", description="georeg geospatial registry")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the embedded stack: Prefect server, worker and API")
    commands.add_parser("api", help="run only the API (uvicorn), against GEOREG_PREFECT_API_URL")
    commands.add_parser("migrate", help="create/upgrade the registry database and the admin user")
    commands.add_parser("deploy", help="register the work pool and every prefect.yaml deployment on PREFECT_API_URL")
    commands.add_parser("version", help="print the version")
    args = parser.parse_args(argv)

    if args.command == "version":
        print(__version__)
        return 0

    from georeg.core.config import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"georeg: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from georeg.deployments.supervisor import serve

        return serve(settings)
    if args.command == "api":
        import uvicorn

        from georeg.api.app import create_app

        uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port)
        return 0
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
        from georeg.deployments.prefect_setup import SetupError, find_project_dir, prefect_env, register_all

        settings.prefect_home.mkdir(parents=True, exist_ok=True)
        api_url = settings.effective_prefect_api_url
        try:
            registration = register_all(
                api_url, work_pool=settings.work_pool, project_dir=find_project_dir(settings.project_dir),
                env=prefect_env(api_url=api_url, prefect_home=settings.prefect_home),
            )
        except SetupError as exc:
            print(f"georeg deploy failed: {exc}", file=sys.stderr)
            return 1
        print(f"registered on {api_url}: {', '.join(registration.names)}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
