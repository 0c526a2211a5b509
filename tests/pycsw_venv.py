"""Create the pycsw test server's own virtualenv (default ``.venv-pycsw`` at the repository root).

``python tests/pycsw_venv.py [VENV]`` (what ``make test`` runs) and the ``pycsw_python`` test fixture both
call :func:`ensure_pycsw_venv`: under an exclusive file lock it creates the venv without pip and installs the
pinned ``tests/pycsw-requirements.txt`` into it with the calling interpreter's pip (``--no-deps``,
``--no-compile``). ``<venv>/.installed`` records a hash of the requirements, so an up-to-date venv costs one
file read and a changed requirements file rebuilds it. Standard library only.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).resolve().with_name("pycsw-requirements.txt")
RUNNER = Path(__file__).resolve().with_name("pycsw_server.py")
DEFAULT_VENV = REPO_ROOT / ".venv-pycsw"


def _wanted() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def _ready(venv: Path) -> bool:
    marker = venv / ".installed"
    return marker.is_file() and marker.read_text().strip() == _wanted() and (venv / "bin" / "python").exists()


def ensure_pycsw_venv(venv: Path = DEFAULT_VENV) -> Path:
    """The venv's interpreter, building the venv first when it is missing or out of date (locked)."""
    venv = Path(venv).absolute()
    python = venv / "bin" / "python"
    if _ready(venv):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ready(venv):
            return python
        shutil.rmtree(venv, ignore_errors=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            subprocess.run(
                [sys.executable, "-m", "pip", "--python", str(python), "install", "-qq", "--no-deps",
                 "--no-compile", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
                check=True,
            )
            subprocess.run([str(python), "-W", "ignore", str(RUNNER), "--check"], check=True, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as exc:
            shutil.rmtree(venv, ignore_errors=True)
            raise RuntimeError(
                f"could not build the pycsw test virtualenv {venv} from {REQUIREMENTS} with {sys.executable} "
                f"(needs Python 3.11 with pip >= 22.3 and the package index): {exc}"
            ) from exc
        (venv / ".installed").write_text(_wanted() + "\n")
    return python


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_VENV
    print(ensure_pycsw_venv(target))
    (target / ".installed").touch()  # newer than the requirements file for make
