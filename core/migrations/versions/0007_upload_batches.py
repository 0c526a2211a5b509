"""upload batches (share and push sessions)

``upload_batches``: a share or push session on a dataset (token, owner, status, whether it created the dataset, the
push delta in ``state``); ``batch_files``: the files a batch received, complete or chunked, staged under the data dir
until commit; ``batch_chunks``: one row per received chunk of a chunked upload, so chunk state survives restarts and
is shared by every API process. All go with their dataset (ON DELETE CASCADE).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 22:44:48
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('upload_batches',
    sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_dataset', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token')
    )
    with op.batch_alter_table('upload_batches', schema=None) as batch_op:
        batch_op.create_index('ix_upload_batches_dataset', ['dataset_id', 'started_at'], unique=False)
        batch_op.create_index('ix_upload_batches_status_activity', ['status', 'last_activity_at'], unique=False)

    op.create_table('batch_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_token', sa.String(length=32), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('file_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('total_chunks', sa.Integer(), nullable=True),
    sa.Column('total_size', sa.BigInteger(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('added_on', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['batch_token'], ['upload_batches.token'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('batch_token', 'file_id', name='uq_batch_file_id'),
    sa.UniqueConstraint('batch_token', 'path', name='uq_batch_file_path')
    )
    op.create_table('batch_chunks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_file_id', sa.Integer(), nullable=False),
    sa.Column('chunk_index', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['batch_file_id'], ['batch_files.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('batch_file_id', 'chunk_index', name='uq_batch_chunk_index')
    )


def downgrade() -> None:
    op.drop_table('batch_chunks')
    op.drop_table('batch_files')
    with op.batch_alter_table('upload_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_upload_batches_status_activity')
        batch_op.drop_index('ix_upload_batches_dataset')

    op.drop_table('upload_batches')
