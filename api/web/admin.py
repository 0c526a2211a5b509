"""The administrators' pages (system administrators only; anyone else gets a 403 page):

- ``/admin``: users (roles, organizations, storage, lockouts; a form to create one), roles (create, delete),
  organizations (create, delete after a confirmation) and the newest tasks of every dataset;
- ``/admin/users/{name}``: a user's roles, a new password, its organization memberships (``PUT /users/{name}/orgs``)
  and deleting it (after a confirmation);
- ``/admin/tasks``: every dataset's tasks (``GET /sys/tasks``) by state, with totals, pages and cancel buttons.

Every change is the call the JSON API's ``/users``, ``/orgs`` and ``/sys`` routes make (``core.registry.accounts``,
``core.registry.orgs``, the task service). A refused change shows the page again with the reason (and the status
the JSON API answers), with nothing changed."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import Session, select

from georeg.api.deps import SessionDep, SettingsDep, TaskServiceDep
from georeg.api.errors import status_for
from georeg.api.web.render import PageRoute, redirect, render, validation_message
from georeg.api.web.session import PageActor, check_csrf
from georeg.core.errors import GeoregError, InvalidInput
from georeg.core.models import Dataset, Permission, User
from georeg.core.paging import MAX_OFFSET
from georeg.core.registry import accounts
from georeg.core.registry import orgs as org_repo
from georeg.core.registry import users as user_repo
from georeg.core.registry.actor import Actor, require_admin
from georeg.core.registry.schemas import AdminPasswordChange, OrgCreate, OrgMembership, UserCreate, UserUpdate
from georeg.core.tasks.model import ACTIVE_STATES, TaskState

router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)

USERS_PER_PAGE = 100
ORGS_PER_PAGE = 200
TASKS_PER_PAGE = 50
NEWEST_TASKS = 10
PERMISSIONS = [permission.value for permission in Permission]

Csrf = Annotated[str, Form(max_length=256)]


def _admin(actor: PageActor) -> User:
    """The signed-in administrator (401 sends to the sign-in page, 403 for anyone else)."""
    return require_admin(actor)


AdminUser = Annotated[User, Depends(_admin)]


def _refused(session: Session, exc: GeoregError | ValidationError) -> tuple[str, int]:
    """Roll back a refused change; its message and status (the JSON API's status)."""
    session.rollback()
    if isinstance(exc, ValidationError):
        return validation_message(exc), 422
    return exc.message, status_for(exc)


def _q(text: str) -> str:
    return quote(text, safe="")


# --- the overview ------------------------------------------------------------------------------------------------


async def _overview(request: Request, session: Session, actor: Actor, tasks: TaskServiceDep, *, skip: int = 0,
                    message: str | None = None, section: str = "", form: dict[str, Any] | None = None,
                    notice: str | None = None, status: int = 200) -> Response:
    users = accounts.list_users_detailed(session, skip=skip, take=USERS_PER_PAGE)
    newest = await tasks.list_all(user_name=None, tool_id=None, state=None, skip=0, take=NEWEST_TASKS)
    context = {
        "users": users, "roles": accounts.list_roles(session), "skip": skip, "take": USERS_PER_PAGE,
        "orgs": org_repo.org_page(session, actor=actor, public_only=False, skip=0, take=ORGS_PER_PAGE),
        "tasks": newest, "message": message, "section": section, "notice": notice,
        "form": {"user_name": "", "email": "", "roles": [], "role": "", "org_slug": "", "org_name": "",
                 "org_description": "", "org_public": False, **(form or {})},
    }
    return render(request, "admin.html", context, status=status)


OVERVIEW_NOTICES = {"user-deleted": "User {name} deleted.", "role-created": "Role {name} created.",
                    "role-deleted": "Role {name} deleted.", "org-deleted": "Organization {name} deleted."}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _done(code: str, name: str) -> str | None:
    """The notice after a change (only known ones, with a name as users, roles and organizations are named)."""
    notice = OVERVIEW_NOTICES.get(code)
    return notice.format(name=name) if notice and NAME.fullmatch(name) else None


@router.get("")
async def admin_page(request: Request, session: SessionDep, actor: PageActor, _: AdminUser, tasks: TaskServiceDep,
                     skip: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                     done: Annotated[str, Query(max_length=32)] = "",
                     name: Annotated[str, Query(max_length=128)] = "") -> Response:
    return await _overview(request, session, actor, tasks, skip=skip, notice=_done(done, name))


@router.post("/users")
async def create_user(request: Request, session: SessionDep, settings: SettingsDep, actor: PageActor,
                      _: AdminUser, tasks: TaskServiceDep, csrf_token: Csrf = "",
                      user_name: Annotated[str, Form(max_length=256)] = "",
                      email: Annotated[str, Form(max_length=512)] = "",
                      password: Annotated[str, Form(max_length=2048)] = "",
                      roles: Annotated[list[str], Form(max_length=100)] = []) -> Response:  # noqa: B006 - FastAPI
    """Create a user (as ``POST /users``), with its personal organization."""
    check_csrf(request, csrf_token)
    form = {"user_name": user_name, "email": email, "roles": roles}
    try:
        body = UserCreate(user_name=user_name.strip(), email=email.strip(), password=password, roles=roles)
        accounts.create_user(session, body, storage_quota=settings.default_user_storage_bytes)
    except (GeoregError, ValidationError) as exc:
        message, status = _refused(session, exc)
        return await _overview(request, session, actor, tasks, message=message, section="create-user", form=form,
                               status=status)
    return redirect(request, f"/admin/users/{_q(body.user_name)}?done=created")


@router.post("/roles")
async def create_role(request: Request, session: SessionDep, actor: PageActor, _: AdminUser, tasks: TaskServiceDep,
                      csrf_token: Csrf = "", role: Annotated[str, Form(max_length=128)] = "") -> Response:
    """Create a role (as ``POST /users/roles/{name}``)."""
    check_csrf(request, csrf_token)
    try:
        accounts.create_role(session, name=role.strip())
    except GeoregError as exc:
        message, status = _refused(session, exc)
        return await _overview(request, session, actor, tasks, message=message, section="roles",
                               form={"role": role}, status=status)
    return redirect(request, f"/admin?done=role-created&name={_q(role.strip())}#roles-heading")


@router.post("/roles/{role_name}/delete")
async def delete_role(request: Request, role_name: str, session: SessionDep, actor: PageActor, _: AdminUser,
                      tasks: TaskServiceDep, csrf_token: Csrf = "") -> Response:
    """Delete a role (as ``DELETE /users/roles/{name}``); the built-in ones stay."""
    check_csrf(request, csrf_token)
    try:
        accounts.delete_role(session, name=role_name[:128])
    except GeoregError as exc:
        message, status = _refused(session, exc)
        return await _overview(request, session, actor, tasks, message=message, section="roles", status=status)
    return redirect(request, f"/admin?done=role-deleted&name={_q(role_name)}#roles-heading")


@router.post("/orgs")
async def create_org(request: Request, session: SessionDep, actor: PageActor, admin: AdminUser,
                     tasks: TaskServiceDep, csrf_token: Csrf = "", slug: Annotated[str, Form(max_length=256)] = "",
                     name: Annotated[str, Form(max_length=512)] = "",
                     description: Annotated[str, Form(max_length=8192)] = "",
                     is_public: Annotated[str, Form(max_length=8)] = "") -> Response:
    """Create an organization owned by the administrator (as ``POST /orgs``)."""
    check_csrf(request, csrf_token)
    form = {"org_slug": slug, "org_name": name, "org_description": description, "org_public": bool(is_public)}
    try:
        body = OrgCreate(slug=slug.strip(), name=name.strip() or slug.strip(), description=description.strip(),
                         is_public=bool(is_public))
        org = org_repo.create_org(session, slug=body.slug, name=body.name, description=body.description,
                                  is_public=body.is_public, owner=admin)
        session.commit()
    except (GeoregError, ValidationError) as exc:
        message, status = _refused(session, exc)
        return await _overview(request, session, actor, tasks, message=message, section="orgs", form=form,
                               status=status)
    return redirect(request, f"/r/{org.slug}")


@router.get("/orgs/{org_slug}/delete")
def confirm_delete_org(request: Request, org_slug: str, session: SessionDep, _: AdminUser) -> Response:
    """The confirmation step before deleting an organization."""
    org = org_repo.get_org(session, slug=org_slug[:128])
    public = org_repo.org_public(session, org=org)
    datasets = session.exec(select(func.count()).select_from(Dataset).where(Dataset.org_id == org.id)).one()
    return render(request, "admin_confirm.html", {
        "title": f"Delete the organization {org.slug}?", "action": f"/admin/orgs/{_q(org.slug)}/delete",
        "button": f"Delete organization {org.slug}", "back": "/admin#orgs-heading",
        "details": [f"Name: {public.name}", f"Owner: {public.owner or '(none)'}",
                    f"Its {datasets} dataset(s) are deleted with their files, metadata and tasks."]})


@router.post("/orgs/{org_slug}/delete")
async def delete_org(request: Request, org_slug: str, session: SessionDep, settings: SettingsDep,
                     actor: PageActor, _: AdminUser, tasks: TaskServiceDep, csrf_token: Csrf = "") -> Response:
    """Delete an organization with its datasets and files (as ``DELETE /orgs/{slug}``)."""
    check_csrf(request, csrf_token)
    org = org_repo.get_org(session, slug=org_slug[:128])
    try:
        org_repo.delete_org(session, settings=settings, org=org)
    except GeoregError as exc:
        message, status = _refused(session, exc)
        return await _overview(request, session, actor, tasks, message=message, section="orgs", status=status)
    return redirect(request, f"/admin?done=org-deleted&name={_q(org_slug)}#orgs-heading")


# --- one user ----------------------------------------------------------------------------------------------------


def _user_page(request: Request, session: Session, *, username: str, message: str | None = None,
               section: str = "", notice: str | None = None, status: int = 200) -> Response:
    user = user_repo.get_user(session, username=username)
    memberships = []
    for item in accounts.user_orgs(session, actor=Actor(user=user, is_admin=True), username=user.username):
        org = org_repo.get_org(session, slug=item.slug)
        memberships.append({"slug": item.slug, "name": item.name, "owned": org.owner_id == user.id,
                            "permission": item.permission.value if item.permission else "read"})
    context = {
        "account": accounts.user_public(session, user), "roles": accounts.list_roles(session),
        "storage": accounts.storage_info(session, user=user), "locked_until": user.locked_until,
        "memberships": memberships, "permissions": PERMISSIONS, "message": message, "section": section,
        "notice": notice,
    }
    return render(request, "admin_user.html", context, status=status)


NOTICES = {"created": "User created. Give it roles and organizations below.", "roles": "Roles saved.",
           "password": "Password changed; the user's lockout, if any, is lifted.",
           "orgs": "Organization memberships saved."}


@router.get("/users/{user_name}")
def user_page(request: Request, user_name: str, session: SessionDep, _: AdminUser,
              done: Annotated[str, Query(max_length=32)] = "") -> Response:
    return _user_page(request, session, username=user_name[:128], notice=NOTICES.get(done))


@router.post("/users/{user_name}/roles")
def set_roles(request: Request, user_name: str, session: SessionDep, _: AdminUser, csrf_token: Csrf = "",
              roles: Annotated[list[str], Form(max_length=100)] = []) -> Response:  # noqa: B006 - FastAPI
    """Replace the user's roles (as ``PUT /users/{name}`` with ``roles``); the last administrator keeps ``admin``."""
    check_csrf(request, csrf_token)
    user = user_repo.get_user(session, username=user_name[:128])
    try:
        accounts.update_user(session, username=user.username, update=UserUpdate(roles=roles))
    except (GeoregError, ValidationError) as exc:
        message, status = _refused(session, exc)
        return _user_page(request, session, username=user.username, message=message, section="roles",
                          status=status)
    return redirect(request, f"/admin/users/{_q(user.username)}?done=roles")


@router.post("/users/{user_name}/password")
def set_password(request: Request, user_name: str, session: SessionDep, _: AdminUser, csrf_token: Csrf = "",
                 new_password: Annotated[str, Form(max_length=2048)] = "",
                 repeat_password: Annotated[str, Form(max_length=2048)] = "") -> Response:
    """Set a new password (as ``PUT /users/{name}/changepwd``)."""
    check_csrf(request, csrf_token)
    user = user_repo.get_user(session, username=user_name[:128])
    try:
        if new_password != repeat_password:
            raise InvalidInput("the two passwords differ: type the same new password twice", code="password_mismatch")
        body = AdminPasswordChange(new_password=new_password)
        accounts.set_password(session, username=user.username, new_password=body.new_password)
    except (GeoregError, ValidationError) as exc:
        message, status = _refused(session, exc)
        return _user_page(request, session, username=user.username, message=message, section="password",
                          status=status)
    return redirect(request, f"/admin/users/{_q(user.username)}?done=password")


@router.post("/users/{user_name}/orgs")
def set_orgs(request: Request, user_name: str, session: SessionDep, _: AdminUser, csrf_token: Csrf = "",
             org: Annotated[list[str], Form(max_length=10_000)] = [],  # noqa: B006 - FastAPI
             permission: Annotated[list[str], Form(max_length=10_000)] = [],  # noqa: B006 - FastAPI
             new_org: Annotated[str, Form(max_length=256)] = "",
             new_permission: Annotated[str, Form(max_length=16)] = "read") -> Response:
    """Replace the user's memberships (as ``PUT /users/{name}/orgs``): each listed organization keeps the chosen
    permission or is left (``none``); ``new_org`` adds one. Organizations the user owns are not changed."""
    check_csrf(request, csrf_token)
    user = user_repo.get_user(session, username=user_name[:128])
    try:
        if len(org) != len(permission):
            raise InvalidInput("the memberships form is incomplete; reload the page and try again",
                               code="invalid_form")
        chosen = [(slug, level) for slug, level in zip(org, permission, strict=True) if level != "none"]
        if new_org.strip():
            chosen.append((new_org.strip(), new_permission))
        memberships = [OrgMembership(slug=slug, permission=level) for slug, level in chosen]
        accounts.set_user_orgs(session, username=user.username, memberships=memberships)
    except (GeoregError, ValidationError) as exc:
        message, status = _refused(session, exc)
        return _user_page(request, session, username=user.username, message=message, section="orgs",
                          status=status)
    return redirect(request, f"/admin/users/{_q(user.username)}?done=orgs")


@router.get("/users/{user_name}/delete")
def confirm_delete_user(request: Request, user_name: str, session: SessionDep, _: AdminUser) -> Response:
    """The confirmation step before deleting a user."""
    user = user_repo.get_user(session, username=user_name[:128])
    owned = [item.slug for item in accounts.user_orgs(session, actor=Actor(user=user, is_admin=True),
                                                      username=user.username)
             if org_repo.get_org(session, slug=item.slug).owner_id == user.id]
    return render(request, "admin_confirm.html", {
        "title": f"Delete the user {user.username}?", "action": f"/admin/users/{_q(user.username)}/delete",
        "button": f"Delete user {user.username}", "back": f"/admin/users/{_q(user.username)}",
        "details": [f"E-mail: {user.email or '(none)'}",
                    "The organizations it owns are deleted with their datasets and files: "
                    + (", ".join(owned) if owned else "(none)") + "."]})


@router.post("/users/{user_name}/delete")
def delete_user(request: Request, user_name: str, session: SessionDep, settings: SettingsDep, admin: AdminUser,
                csrf_token: Csrf = "") -> Response:
    """Delete the user and the organizations it owns (as ``DELETE /users/{name}``; not oneself)."""
    check_csrf(request, csrf_token)
    user = user_repo.get_user(session, username=user_name[:128])
    try:
        accounts.delete_user(session, settings=settings, username=user.username, by=admin)
    except GeoregError as exc:
        message, status = _refused(session, exc)
        return _user_page(request, session, username=user.username, message=message, section="delete",
                          status=status)
    return redirect(request, f"/admin?done=user-deleted&name={_q(user.username)}#users-heading")


# --- every dataset's tasks ---------------------------------------------------------------------------------------


@router.get("/tasks")
async def all_tasks(request: Request, _: AdminUser, tasks: TaskServiceDep, state: TaskState | None = None,
                    skip: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> Response:
    """Every dataset's tasks, newest first (as ``GET /sys/tasks``), by state, a page at a time."""
    page = await tasks.list_all(user_name=None, tool_id=None, state=state, skip=skip, take=TASKS_PER_PAGE)
    here = f"/admin/tasks?state={state.value if state else ''}&skip={skip}"
    return render(request, "admin_tasks.html", {
        "tasks": page, "state": state.value if state else "", "states": [s.value for s in TaskState],
        "active": {s.value for s in ACTIVE_STATES}, "skip": skip, "take": TASKS_PER_PAGE, "here": here})
