"""Write a new Alembic migration by comparing the models with a freshly migrated database.

Usage: .venv/bin/python tools/make_migration.py "what changed"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from common.db import Database
from common.schema import alembic_config, upgrade


def main() -> None:
    message = sys.argv[1] if len(sys.argv) > 1 else "schema change"
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite:///{Path(folder) / 'scratch.db'}")
        upgrade(database)
        # Sequential revision ids (0001, 0002, ...) read better than random hex.
        versions = Path(__file__).resolve().parent.parent / "migrations" / "versions"
        number = len(list(versions.glob("[0-9][0-9][0-9][0-9]_*.py"))) + 1
        command.revision(
            alembic_config(database), message=message, autogenerate=True, rev_id=f"{number:04d}"
        )


if __name__ == "__main__":
    main()
