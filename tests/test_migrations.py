"""The migrations build exactly the schema the models describe, on every database the suite runs on."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hookyard.models import Base


def test_models_and_migrations_agree(runtime):
    with runtime.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], "the models changed without a migration: add one under platform/hookyard/migrations"
