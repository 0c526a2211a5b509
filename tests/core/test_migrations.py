"""Alembic migrations: idempotent, and in step with the SQLModel tables."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from georeg.core.bootstrap import bootstrap
from georeg.core.config import Settings
from georeg.core.db import make_engine, migrate
from georeg.core.repositories import users as user_repo
from georeg.core.db import session_scope


def test_models_match_migrations(settings):
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, SQLModel.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()


def test_bootstrap_is_idempotent_and_keeps_data(settings):
    engine = make_engine(settings.effective_database_url)
    try:
        first = bootstrap(settings, engine)
        second = bootstrap(settings, engine)
        assert first.admin_created and not second.admin_created
        with session_scope(engine) as session:
            assert user_repo.find_user(session, username="admin") is not None
    finally:
        engine.dispose()


def test_generated_admin_password_is_returned_once_and_only_hashed(tmp_path):
    settings = Settings(data_dir=tmp_path, admin_password=None)
    engine = make_engine(settings.effective_database_url)
    try:
        report = bootstrap(settings, engine)
        assert report.generated_password
        assert bootstrap(settings, engine).generated_password is None
        with session_scope(engine) as session:
            admin = user_repo.get_user(session, username="admin")
            assert report.generated_password not in admin.password_hash
    finally:
        engine.dispose()
    assert (tmp_path / "secret_key").read_text() == Settings(data_dir=tmp_path).resolve_secret_key()
