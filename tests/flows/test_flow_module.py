"""What a flow-run process pays before its run is Running: importing ``flows/tools.py`` loads Prefect and the tool
list only, and a run then loads just its own tool."""

from __future__ import annotations

import subprocess
import sys

import pytest

from georeg.core.tasks.tools import TOOLS, shipped_tool, shipped_tools

HEAVY = ("sqlmodel", "sqlalchemy", "rasterio", "alembic", "georeg.core.models")


def test_flow_module_imports_nothing_heavy():
    code = (f"import sys, georeg.flows.tools; print([m for m in sys.modules if m in {HEAVY!r} "
            "or m.startswith('georeg.core.tasks.tools.')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_tool_of_the_list_has_its_flow_and_loads_alone():
    from georeg.flows import tools as flows

    for tool in shipped_tools():
        assert shipped_tool(tool.id) is tool
        assert getattr(flows, tool.flow_attribute).name == tool.id
        assert getattr(flows, tool.flow_attribute) is getattr(flows, tool.flow_attribute)
    assert sorted(tool.id for tool in shipped_tools()) == sorted(TOOLS)
    assert shipped_tool("no-such-tool") is None
    with pytest.raises(AttributeError):
        flows.no_such_tool  # noqa: B018


def test_a_run_imports_only_its_own_tool():
    code = ("import sys; from georeg.core.tasks.tools import shipped_tool; shipped_tool('bulk-download'); "
            "print(' '.join(m for m in sys.modules if m.startswith('georeg.core.tasks.tools.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "georeg.core.tasks.tools.bulk_download" in loaded
    others = ({f"georeg.core.tasks.tools.{module}" for module in TOOLS.values()}
              - {"georeg.core.tasks.tools.bulk_download"})
    assert not loaded & others
