"""Alembic migrations: idempotent, and in step with the SQLModel tables."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from georeg.core.bootstrap import bootstrap
from georeg.core.config import Settings
from georeg.core.db import is_model_table, make_engine, migrate, session_scope
from georeg.core.registry import users as user_repo


def test_models_match_migrations(settings):
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection,
                                                 opts={"compare_type": True, "include_name": is_model_table})
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


def test_0004_backfills_raster_search_text_and_downgrades(settings):
    from alembic import command
    from sqlalchemy import text

    from georeg.core.db import alembic_config

    engine = make_engine(settings.effective_database_url)
    config = alembic_config(settings.effective_database_url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            command.downgrade(config, "0003")
            connection.execute(text(
                "INSERT INTO organizations (slug, name, description, is_public, created_at) "
                "VALUES ('o', 'o', '', false, '2026-01-01')"))
            connection.execute(text(
                "INSERT INTO datasets (org_id, slug, name, description, visibility, meta, created_at, updated_at) "
                "SELECT id, 'd', 'd', '', 'private', '{}', '2026-01-01', '2026-01-01' FROM organizations"))
            connection.execute(text(
                "INSERT INTO entries (public_id, dataset_id, path, type, size, mtime, properties) "
                "SELECT 'e1', id, 'a.tif', 'raster', 1, '2026-01-01', '{}' FROM datasets"))
            connection.execute(text(
                "INSERT INTO rasters (entry_id, public_id, title, source, source_path, owned, sha256, size, width, "
                "height, band_count, dtype, meta, created_at) SELECT id, 'abc123', 'Ærø Scene', 'path', '/m/X.tif', "
                "false, 'h', 1, 1, 1, 1, 'uint8', '{}', '2026-01-01' FROM entries"))
            command.upgrade(config, "0004")
            assert connection.execute(text("SELECT search_text FROM rasters")).scalar_one() == \
                "ærø scene\n/m/x.tif\nabc123"
            command.upgrade(config, "head")  # the session's database stays at head for the tests after this one
    finally:
        engine.dispose()
