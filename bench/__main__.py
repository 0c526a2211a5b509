"""Run the benchmarks: ``python -m bench`` runs them all, ``python -m bench NAME ...`` a subset.

A benchmark is any module of this package whose name does not start with ``_`` and that exposes
``run() -> dict``. It prints its own report while it runs; the returned dict is printed here as JSON.
Add a benchmark by dropping such a module into ``bench/`` -- nothing to register.

Exit status: 0 when every selected benchmark ran, 1 when one raised, 2 for an unknown name.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path

PACKAGE = __package__ or "bench"
PACKAGE_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    """Module names of the package that may be benchmarks (sorted; ``_private`` ones skipped)."""
    return sorted(
        info.name for info in pkgutil.iter_modules([str(PACKAGE_DIR)]) if not info.name.startswith("_")
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in argv):
        print(f"usage: python -m {PACKAGE} [NAME ...]\nbenchmarks: {', '.join(available()) or '(none)'}")
        return 0
    names = available()
    selected = argv or names
    unknown = [name for name in selected if name not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(names)}", file=sys.stderr)
        return 2

    results: dict[str, dict] = {}
    failed: list[str] = []
    for name in selected:
        module = importlib.import_module(f"{PACKAGE}.{name}")
        run = getattr(module, "run", None)
        if not callable(run):
            if argv:  # asked for by name: say why nothing happened
                print(f"{name}: no run() function, skipped", file=sys.stderr)
            continue
        print(f"=== {name} ===", flush=True)
        started = time.perf_counter()
        try:
            result = run()
        except Exception:  # noqa: BLE001 - report and go on with the other benchmarks
            traceback.print_exc()
            failed.append(name)
            print(f"=== {name}: FAILED after {time.perf_counter() - started:.1f} s ===\n", flush=True)
            continue
        results[name] = result
        print(f"--- {name} result ({time.perf_counter() - started:.1f} s) ---")
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
        print(flush=True)

    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
