"""server-side web sessions: signing out, a password change or removing a person ends them

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import hookyard.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # Cookies from before this revision carry no session id, so everyone signs in once more after the upgrade:
    # there is no row that could vouch for them.
    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('marketplace_id', sa.Integer(), nullable=False),
    sa.Column('created_at', hookyard.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', hookyard.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', hookyard.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', hookyard.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=False),
    sa.Column('client_address', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['marketplace_id'], ['marketplaces.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('id_hash'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_marketplace_id'), ['marketplace_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_sessions_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_sessions_user_id'))
        batch_op.drop_index(batch_op.f('ix_user_sessions_marketplace_id'))
    op.drop_table('user_sessions')
