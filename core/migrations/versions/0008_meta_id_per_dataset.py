"""metadata ids unique per dataset

``dataset_meta``'s primary key becomes (dataset_id, id): a push keeps the client's metadata ids, so restoring one
dataset's dump into another (DroneDB keeps one index per dataset) must not collide with the source's ids. The table
is rebuilt (SQLite cannot change a primary key in place), rows copied.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 23:40:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

COLUMNS = "id, dataset_id, path, key, data, mtime"


def _rebuild(primary_key: list[str]) -> None:
    op.create_table('dataset_meta_new',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('mtime', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint(*primary_key, name='pk_dataset_meta' if len(primary_key) > 1 else None)
    )
    op.execute(f"INSERT INTO dataset_meta_new ({COLUMNS}) SELECT {COLUMNS} FROM dataset_meta")
    with op.batch_alter_table('dataset_meta', schema=None) as batch_op:
        batch_op.drop_index('ix_dataset_meta_lookup')
    op.drop_table('dataset_meta')
    op.rename_table('dataset_meta_new', 'dataset_meta')
    with op.batch_alter_table('dataset_meta', schema=None) as batch_op:
        batch_op.create_index('ix_dataset_meta_lookup', ['dataset_id', 'path', 'key'], unique=False)


def upgrade() -> None:
    _rebuild(['dataset_id', 'id'])


def downgrade() -> None:
    _rebuild(['id'])
