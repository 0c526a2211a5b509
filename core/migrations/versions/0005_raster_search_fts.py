"""raster text search index on SQLite

``GET /datasets?q=`` is a substring match on ``search_text``. PostgreSQL answers it from the trigram GIN index of
0004; on SQLite it was a scan of every row's text. This adds an FTS5 index with the trigram tokenizer
(``rasters_search``, external content = ``rasters``), kept in step by triggers on insert, delete and update of
``search_text`` (so bulk SQL inserts are indexed too), and fills it from the existing rows. A table rebuild of
``rasters`` by a later batch migration drops the triggers: such a migration must create them again
(``create_triggers``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:30:00
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TRIGGERS = {
    "rasters_search_insert": """CREATE TRIGGER rasters_search_insert AFTER INSERT ON rasters BEGIN
        INSERT INTO rasters_search(rowid, search_text) VALUES (new.id, new.search_text); END""",
    "rasters_search_delete": """CREATE TRIGGER rasters_search_delete AFTER DELETE ON rasters BEGIN
        INSERT INTO rasters_search(rasters_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); """
        """END""",
    "rasters_search_update": """CREATE TRIGGER rasters_search_update AFTER UPDATE OF search_text ON rasters BEGIN
        INSERT INTO rasters_search(rasters_search, rowid, search_text) VALUES ('delete', old.id, old.search_text);
        INSERT INTO rasters_search(rowid, search_text) VALUES (new.id, new.search_text); END""",
}


def create_triggers() -> None:
    for statement in TRIGGERS.values():
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE VIRTUAL TABLE rasters_search USING fts5(search_text, content='rasters', content_rowid='id', "
               "tokenize='trigram')")
    create_triggers()
    op.execute("INSERT INTO rasters_search(rasters_search) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS rasters_search")
