"""Re-encrypt every stored secret with the newest key (`synchronizer rotate-keys`)."""

from __future__ import annotations

from sqlalchemy import Table, Text, bindparam, select, type_coerce, update

from common.db import Database
from common.models import ENCRYPTED_COLUMNS
from common.secrets import key_ring


def rotate_all(database: Database) -> int:
    """Rotate every encrypted value in one transaction; returns how many were rewritten."""
    rewritten = 0
    with database.engine.begin() as connection:
        for model, column_name in ENCRYPTED_COLUMNS:
            table = model.__table__
            assert isinstance(table, Table)
            column = table.c[column_name]
            # Read and write the raw ciphertext: the column type would decrypt it.
            raw = type_coerce(column, Text)
            rows = connection.execute(select(table.c.id, raw).where(column.is_not(None))).all()
            for row_id, token in rows:
                connection.execute(
                    update(table)
                    .where(table.c.id == row_id)
                    .values(
                        {column_name: bindparam("token", key_ring.rotate(str(token)), type_=Text)}
                    )
                )
                rewritten += 1
    return rewritten
