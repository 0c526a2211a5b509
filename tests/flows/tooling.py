"""Test-only task tools (not shipped): deployed by the test suite, run by its worker.

Loaded by path by the worker, so it imports only ``georeg``.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel, Field

from georeg.core.errors import InvalidInput
from georeg.core.models import Permission
from georeg.core.tasks.model import Tool, ToolContext, ToolOutcome
from georeg.flows.tools import tool_flow


class SleepParams(BaseModel):
    seconds: float = Field(default=60, ge=0, le=600)


def _sleep(context: ToolContext, params: SleepParams) -> ToolOutcome:
    deadline = time.monotonic() + params.seconds
    while time.monotonic() < deadline:
        remaining = deadline - time.monotonic()
        context.progress(100 * (1 - remaining / max(params.seconds, 0.001)), "sleeping", f"{remaining:.0f}s left")
        time.sleep(min(0.5, max(remaining, 0)))
    return ToolOutcome(result={"slept": params.seconds})


class LogLinesParams(BaseModel):
    lines: int = Field(default=1000, ge=1, le=100_000)


def _log_lines(context: ToolContext, params: LogLinesParams) -> ToolOutcome:
    for index in range(params.lines):
        context.logger.info("line %06d", index)
    return ToolOutcome(result={"lines": params.lines})


class FailParams(BaseModel):
    message: str = "boom"
    fail: bool = True


def _fail(context: ToolContext, params: FailParams) -> ToolOutcome:
    context.progress(50, "about to fail")
    if params.fail:
        raise InvalidInput(params.message, code="test_failure")
    return ToolOutcome(result={"ok": True})


class ProcessParams(BaseModel):
    pass


def _process(context: ToolContext, params: ProcessParams) -> ToolOutcome:
    """Where the run executes: its process, parent, session, working directory, registry settings and
    Prefect's heartbeat setting."""
    from prefect.settings import get_current_settings

    return ToolOutcome(result={"pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "cwd": os.getcwd(),
                               "data_dir": os.environ.get("GEOREG_DATA_DIR"),
                               "database_url": os.environ.get("GEOREG_DATABASE_URL"),
                               "heartbeat_frequency": get_current_settings().flows.heartbeat_frequency})


SLEEP = Tool(id="test-sleep", version="1", title="Sleep", description="test only", parameters=SleepParams, run=_sleep)
LOG_LINES = Tool(id="test-log-lines", version="1", title="Log lines", description="test only",
                 parameters=LogLinesParams, run=_log_lines)
FAIL = Tool(id="test-fail", version="1", title="Fail", description="test only", parameters=FailParams, run=_fail,
            required_access=Permission.write)
PROCESS = Tool(id="test-process", version="1", title="Process", description="test only", parameters=ProcessParams,
               run=_process)
TEST_TOOLS = (SLEEP, LOG_LINES, FAIL, PROCESS)

test_sleep = tool_flow(SLEEP)
test_log_lines = tool_flow(LOG_LINES)
test_fail = tool_flow(FAIL)
test_process = tool_flow(PROCESS)
