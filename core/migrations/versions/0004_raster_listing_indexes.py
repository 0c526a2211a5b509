"""raster listing indexes

Two covering indexes holding everything ``GET /datasets`` filters on, one in registration and one in acquisition
order, replace the single-column indexes on the bounding box, platform, source, created_at and acquired_at (useless
for overlap tests, and they led SQLite's planner into wide-row lookups); an index for the size sort; ``search_text``
for ``q`` with a trigram GIN index on PostgreSQL (pg_trgm, a trusted extension); platforms upper-cased.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

LISTING = ["created_at", "id", "minx", "miny", "maxx", "maxy", "acquired_at", "platform", "source"]
ACQUIRED = ["acquired_at", "id", "minx", "miny", "maxx", "maxy", "platform", "source", "created_at"]
REPLACED = ["minx", "miny", "maxx", "maxy", "platform", "source", "created_at", "acquired_at"]


def _backfill_search_text() -> None:
    """Lowercased like the ORM hook does (Python's lower(), not SQL's ASCII-only one), in batches."""
    bind = op.get_bind()
    rasters = sa.table("rasters", sa.column("id"), sa.column("title"), sa.column("source_identifier"),
                       sa.column("source_path"), sa.column("public_id"), sa.column("search_text"))
    last = 0
    while True:
        rows = bind.execute(sa.select(rasters.c.id, rasters.c.title, rasters.c.source_identifier, rasters.c.source_path,
                                      rasters.c.public_id).where(rasters.c.id > last).order_by(rasters.c.id)
                            .limit(1000)).all()
        if not rows:
            return
        for row in rows:
            text = "\n".join(part for part in row[1:] if part).lower()
            bind.execute(sa.update(rasters).where(rasters.c.id == row.id).values(search_text=text))
        last = rows[-1].id


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    with op.batch_alter_table('rasters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.String(length=3000), server_default='', nullable=False))
        for column in REPLACED:
            batch_op.drop_index(batch_op.f(f'ix_rasters_{column}'))
        batch_op.create_index('ix_rasters_listing', LISTING, unique=False)
        batch_op.create_index('ix_rasters_acquired', ACQUIRED, unique=False)
        batch_op.create_index(batch_op.f('ix_rasters_size'), ['size'], unique=False)
    _backfill_search_text()
    op.execute("UPDATE rasters SET platform = upper(platform) WHERE platform IS NOT NULL")
    op.create_index('ix_rasters_search_text', 'rasters', ['search_text'], unique=False, postgresql_using='gin',
                    postgresql_ops={'search_text': 'gin_trgm_ops'})


def downgrade() -> None:
    op.drop_index('ix_rasters_search_text', table_name='rasters')
    with op.batch_alter_table('rasters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rasters_size'))
        batch_op.drop_index('ix_rasters_acquired')
        batch_op.drop_index('ix_rasters_listing')
        for column in REPLACED:
            batch_op.create_index(batch_op.f(f'ix_rasters_{column}'), [column], unique=False)
        batch_op.drop_column('search_text')
