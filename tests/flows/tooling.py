"""Test-only task tools (not shipped): deployed by the test suite, run by its worker.

Loaded by path by the worker, so it imports only ``georeg``.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from georeg.core.errors import InvalidInput
from georeg.core.models import Permission
from georeg.core.tasks import Tool, ToolContext, ToolOutcome
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


SLEEP = Tool(id="test-sleep", version="1", title="Sleep", description="test only", parameters=SleepParams, run=_sleep)
LOG_LINES = Tool(id="test-log-lines", version="1", title="Log lines", description="test only",
                 parameters=LogLinesParams, run=_log_lines)
FAIL = Tool(id="test-fail", version="1", title="Fail", description="test only", parameters=FailParams, run=_fail,
            required_access=Permission.write)
TEST_TOOLS = (SLEEP, LOG_LINES, FAIL)

test_sleep = tool_flow(SLEEP)
test_log_lines = tool_flow(LOG_LINES)
test_fail = tool_flow(FAIL)
