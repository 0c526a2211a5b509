"""the attempt a task's flow run began executing

``tasks.executed_attempt`` is claimed by the flow run that starts a task's tool, in the same conditional update that
marks the attempt started: a second execution of the same flow run (Prefect lets a worker holding a stale copy of
a finished run submit it again) finds the attempt claimed and does nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 17:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('executed_attempt', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('executed_attempt')
