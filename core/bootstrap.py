"""Start-up of a data dir: layout, migrations, built-in roles, admin user and default organization."""

from __future__ import annotations

import secrets

from pydantic import BaseModel
from sqlalchemy.engine import Engine

from georeg.core.config import Settings
from georeg.core.db import migrate, session_scope
from georeg.core.models import ADMIN_ROLE
from georeg.core.rasters.service import REGISTRY_ORG, create_registry_location
from georeg.core.registry import orgs as org_repo
from georeg.core.registry import users as user_repo
from georeg.core.security import set_hashing_cost
from georeg.core.storage import remove_orphan_temp_files


class BootstrapReport(BaseModel):
    admin_username: str
    admin_created: bool
    generated_password: str | None = None


def bootstrap(settings: Settings, engine: Engine) -> BootstrapReport:
    """Idempotent: safe on every start, on a fresh or an existing data dir."""
    settings.ensure_layout()
    remove_orphan_temp_files(settings.tmp_dir)  # of a process killed mid-upload
    settings.resolve_secret_key()
    set_hashing_cost(memory_kib=settings.password_hash_memory_kib, time_cost=settings.password_hash_time_cost)
    migrate(engine)
    with session_scope(engine) as session:
        user_repo.ensure_builtin_roles(session)
        admin = user_repo.find_user(session, username=settings.admin_username)
        created = admin is None
        generated = None
        if created:
            password = settings.admin_password
            if not password:
                password = generated = secrets.token_urlsafe(12)
            admin = user_repo.create_user(
                session,
                username=settings.admin_username,
                password=password,
                email=settings.admin_email,
                roles=[ADMIN_ROLE],
            )
        default_org = org_repo.find_org(session, slug=REGISTRY_ORG)
        if default_org is None:
            default_org = org_repo.create_org(session, slug=REGISTRY_ORG, name="Default", owner=admin, is_public=False)
        create_registry_location(session, org=default_org)
        return BootstrapReport(
            admin_username=settings.admin_username, admin_created=created, generated_password=generated
        )
