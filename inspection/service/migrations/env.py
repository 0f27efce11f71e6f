"""Alembic environment: uses the engine the service passes in (config.attributes["engine"]),
or a URL given on the command line with `-x url=...`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from inspection.service.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = context.get_x_argument(as_dictionary=True).get("url")
        if not url:
            raise SystemExit("pass the database with: alembic -x url=DATABASE_URL ...")
        engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
