"""What a flow-run process pays before its run is Running: importing ``flows/tools.py`` loads Prefect
only, and a run then loads just its own tool."""

from __future__ import annotations

import subprocess
import sys

from georeg.core.tasks.model import default_registry
from georeg.core.tasks.tools import shipped_tool

HEAVY = ("sqlmodel", "sqlalchemy", "rasterio", "alembic", "georeg.core.models", "georeg.core.tasks.tools")


def test_flow_module_imports_nothing_heavy():
    code = f"import sys, georeg.flows.tools; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_shipped_tool_has_its_flow_and_loads_alone():
    from georeg.flows import tools as flows

    for tool in default_registry().all():
        assert shipped_tool(tool.id) is tool
        assert getattr(flows, tool.id.replace("-", "_")).name == tool.id
    assert shipped_tool("no-such-tool") is None


def test_a_run_imports_only_its_own_tool():
    from georeg.core.tasks.tools import MODULES

    code = ("import sys; from georeg.core.tasks.tools import shipped_tool; shipped_tool('bulk-download'); "
            "print(' '.join(m for m in sys.modules if m.startswith('georeg.core.tasks.tools.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "georeg.core.tasks.tools.bulk_download" in loaded
    others = {f"georeg.core.tasks.tools.{module}" for module in MODULES.values()} - {"georeg.core.tasks.tools.bulk_download"}
    assert not loaded & others
