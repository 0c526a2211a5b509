"""dataset metadata

``dataset_meta``: the metadata values of a dataset (``path`` "") and of its entries (``path`` the entry's path), one
row per value (a plural key holds several), ``data`` any JSON value; looked up by (dataset, path, key). Rows go with
their dataset (ON DELETE CASCADE); the registry moves and deletes an entry's rows with the entry.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 18:55:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dataset_meta',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('mtime', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dataset_meta', schema=None) as batch_op:
        batch_op.create_index('ix_dataset_meta_lookup', ['dataset_id', 'path', 'key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dataset_meta', schema=None) as batch_op:
        batch_op.drop_index('ix_dataset_meta_lookup')

    op.drop_table('dataset_meta')
