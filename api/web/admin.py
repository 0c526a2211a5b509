"""The administrators' page ``/admin``: users (with roles, organizations, storage, lockouts), roles, every
organization, and the tasks of every dataset (``/sys/tasks``). Read-only for now: changes go through the JSON API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from georeg.api.deps import SessionDep, TaskServiceDep
from georeg.api.web.render import PageRoute, render
from georeg.api.web.session import PageActor
from georeg.core.registry import accounts
from georeg.core.registry import orgs as org_repo
from georeg.core.registry.actor import require_admin

router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)

ROWS = 200


def _admin_lists(session: SessionDep, actor: PageActor) -> dict:
    require_admin(actor)
    return {"users": accounts.list_users_detailed(session, skip=0, take=ROWS), "roles": accounts.list_roles(session),
            "orgs": org_repo.org_page(session, actor=actor, public_only=False, skip=0, take=ROWS)}


AdminLists = Annotated[dict, Depends(_admin_lists)]


@router.get("")
async def admin_page(request: Request, tasks: TaskServiceDep, lists: AdminLists) -> Response:
    recent = await tasks.list_all(user_name=None, tool_id=None, state=None, skip=0, take=50)
    return render(request, "admin.html", {**lists, "tasks": recent})
