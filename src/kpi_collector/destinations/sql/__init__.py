"""`type: sql`: a table in another database (the team's warehouse), wide or long, upserted by
period in one transaction: a re-run updates its row, a crash never leaves a duplicate.

    - {type: sql, url: "${WAREHOUSE_URL}", table: kpis, every: day}
    - {type: sql, url: "postgresql+psycopg://kpi:${PW}@db/warehouse", table: kpi_values, layout: long}

wide: `period` (primary key), `date`, `updated_at`, then one DOUBLE column per KPI named by its
id with every other character than letters, digits and `_` replaced (`github.stars` →
`github_stars`, lower case, cut to 60; two KPIs never share one: see README.md); new KPIs
add columns. long: `period`, `kpi` (primary key), `date`, `title`,
`value`, `updated_at`. Any SQLAlchemy URL works (SQLite, PostgreSQL, MariaDB/MySQL, ...).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator

from kpi_collector.collect.sql import first_line, with_driver
from kpi_collector.destinations._table import LONG_KEY, WIDE_KEY, rows_of
from kpi_collector.destinations.base import (
    Delivery,
    TableDestination,
    delivery_error,
    refuse_name_collision,
)
from kpi_collector.errors import DeliveryError
from kpi_collector.secrets import DatabaseUrl, redact

if TYPE_CHECKING:
    import sqlalchemy as sa

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]+")
#: connection refusals no retry fixes (PostgreSQL, MariaDB/MySQL wording): they are
#: OperationalErrors like a lost connection, but name the URL's user, password or database
_REFUSED_LOGIN = re.compile(
    r'password authentication failed|role "[^"]*" does not exist|database "[^"]*" does '
    r"not exist|no pg_hba\.conf entry|access denied for user|unknown database",
    re.I,
)
#: a wide table over the database's column limit (PostgreSQL 1600, MariaDB/MySQL InnoDB 1017,
#: SQLite 2000 by default): this delivery's KPIs never fit, fewer may
_TOO_MANY_COLUMNS = re.compile(
    r"tables can have at most \d+ columns|too many columns|row size too large", re.I
)


def column_name(kpi: str) -> str:
    """`github.stars` → `github_stars` (lower case, at most 60 characters)."""
    name = _NOT_IDENT.sub("_", kpi).strip("_").lower() or "kpi"
    return ("k_" + name if name[0].isdigit() else name)[:60]


class SQL(TableDestination):
    type: ClassVar[str] = "sql"
    name_kind: ClassVar[str] = "column"
    name_fix: ClassVar[str] = (
        "rename one (column names are ids in lower case, other characters than letters and "
        "digits as `_`, cut to 60)"
    )

    url: DatabaseUrl
    table: str = Field(default="kpis", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    db_schema: str | None = Field(default=None, alias="schema")
    _engine: Any = PrivateAttr(default=None)

    model_config = TableDestination.model_config | {"populate_by_name": True}

    @field_validator("url")
    @classmethod
    def _database_url(cls, value: DatabaseUrl) -> DatabaseUrl:
        from kpi_collector.config.plain import check_database_url

        check_database_url(value.get())
        return value

    def kpi_names(self, kpis: Sequence[str], titles: Mapping[str, str]) -> dict[str, str]:
        """wide: {kpi: column} by `column_name`, folded to lower case as the databases
        compare unquoted names; long names nothing by KPI."""
        if self.layout == "long":
            return {}
        return {kpi: column_name(kpi) for kpi in kpis}

    def reserved_names(self) -> frozenset[str]:
        """wide: the `period`, `date` and `updated_at` columns."""
        return frozenset({"period", "date", "updated_at"}) if self.layout == "wide" else frozenset()

    async def deliver(self, delivery: Delivery) -> None:
        refuse_name_collision(self, delivery)  # the config's own KPIs are checked at load
        await asyncio.to_thread(self._deliver, delivery)

    def engine(self) -> sa.Engine:
        import sqlalchemy as sa

        if self._engine is None:
            try:
                url = with_driver(sa.engine.make_url(self.url.get()))
                kwargs: dict[str, Any] = {"pool_pre_ping": True}
                if url.get_backend_name() == "sqlite":
                    kwargs = {"connect_args": {"timeout": 30}}
                elif url.get_backend_name() in ("postgresql", "mysql", "mariadb"):
                    kwargs["connect_args"] = {"connect_timeout": max(1, int(self.timeout))}
                self._engine = sa.create_engine(url, **kwargs)
            except Exception as exc:  # a bad URL or a missing driver
                raise delivery_error(
                    f"cannot open the sql destination's database: {first_line(exc)}",
                    transient=False,
                ) from None
        engine: sa.Engine = self._engine
        return engine

    def _deliver(self, delivery: Delivery) -> None:
        import sqlalchemy as sa

        rows = rows_of(delivery, self.layout)
        now = time.time()
        try:
            with self.engine().begin() as conn:
                table = self._table(conn, delivery)
                for row in rows:
                    self._upsert(conn, table, self._record(row, now))
        except DeliveryError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(exc, delivery) from None
        except OSError as exc:
            raise delivery_error(
                f"sql destination {self.name!r}: {redact(str(exc))}", transient=True
            ) from None

    def _error(self, exc: Exception, delivery: Delivery) -> DeliveryError:
        """A database error as a DeliveryError naming its cause: too many columns for a wide
        table (refused: fewer KPIs fit), a refused login (terminal), a lost or refused
        connection (transient), anything else (terminal, the database's first line)."""
        import sqlalchemy as sa

        if _TOO_MANY_COLUMNS.search(str(exc)):
            return delivery_error(
                f"sql destination {self.name!r}: {len(delivery.ordered):,} KPIs are over the "
                f"database's columns per table ({first_line(exc)}): use `layout: long` (a "
                "row per KPI) for this many KPIs",
                transient=False,
                refused=True,
            )
        if isinstance(exc, sa.exc.OperationalError):  # connection refused, lost, locked, timed out
            if _REFUSED_LOGIN.search(str(exc)):  # not the network: the URL's login
                return delivery_error(
                    f"sql destination {self.name!r}: the database refused the login "
                    f"({first_line(exc)}): check the user, password and database in `url`",
                    transient=False,
                )
            return delivery_error(
                f"sql destination {self.name!r}: {first_line(exc)}", transient=True
            )
        return delivery_error(
            f"sql destination {self.name!r} (table {self.table}): {first_line(exc)}",
            transient=bool(getattr(exc, "connection_invalidated", False)),
        )

    def _record(self, row: dict[str, Any], now: float) -> dict[str, Any]:
        if self.layout == "long":
            return {**row, "updated_at": now}
        out = {"period": row["period"], "date": row["date"], "updated_at": now}
        out.update({column_name(k): v for k, v in row.items() if k not in ("period", "date")})
        return out

    def _widen_title(self, conn: sa.Connection, delivery: Delivery) -> None:
        """A long table made by an earlier version has `title` VARCHAR(200): a longer title
        failed the period's rows on PostgreSQL and MariaDB, so the column becomes TEXT (SQLite
        keeps any length). On MariaDB/MySQL a `title` in another character set than utf8mb4
        (the database's default, latin1 on many servers, when an earlier version made it)
        refused an emoji or Cyrillic title: it is converted (its titles kept)."""
        import sqlalchemy as sa

        mysql = conn.dialect.name in ("mysql", "mariadb")
        longest = max((len(delivery.title(k)) for k in delivery.ordered), default=0)
        narrow = mysql and self._column_charset(conn, "title") not in (None, "utf8mb4")
        if not narrow and (longest <= 200 or conn.dialect.name == "sqlite"):
            return
        columns = sa.inspect(conn).get_columns(self.table, schema=self.db_schema)
        title = next((c for c in columns if c["name"] == "title"), None)
        length = getattr(title["type"], "length", None) if title else None
        if not narrow and (length is None or length >= longest):
            return
        prep = conn.dialect.identifier_preparer
        name = prep.quote(self.table)
        if self.db_schema:
            name = f"{prep.quote_schema(self.db_schema)}.{name}"
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"ALTER TABLE {name} ALTER COLUMN title TYPE TEXT"))
        elif mysql:
            conn.execute(sa.text(f"ALTER TABLE {name} MODIFY title TEXT CHARACTER SET utf8mb4"))
        else:
            conn.execute(sa.text(f"ALTER TABLE {name} MODIFY title TEXT"))

    def _column_charset(self, conn: sa.Connection, column: str) -> str | None:
        """The character set of the table's `column` on MariaDB/MySQL (None: no such column)."""
        import sqlalchemy as sa

        found = conn.execute(
            sa.text(
                "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA ="
                " COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table AND COLUMN_NAME = :column"
            ),
            {"schema": self.db_schema, "table": self.table, "column": column},
        ).scalar()
        return None if found is None else str(found)

    def _binary_kpi(self, conn: sa.Connection) -> None:
        """On MariaDB/MySQL the long table's `kpi` compares as the other databases compare
        it (`collect.sql.binary_collation`): under the server's default collation `app.Stars`
        and `app.stars`, `app.cafe` and `app.café`, `app.x` and `app.x ` were one key, and
        one KPI's upsert overwrote the other's row. A table made earlier is converted."""
        import sqlalchemy as sa

        from kpi_collector.collect.sql import binary_collation

        if conn.dialect.name not in ("mysql", "mariadb"):
            return
        current = conn.execute(
            sa.text(
                "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA ="
                " COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table AND COLUMN_NAME = 'kpi'"
            ),
            {"schema": self.db_schema, "table": self.table},
        ).scalar()
        collation = binary_collation(conn)
        if current is None or current == collation:
            return
        prep = conn.dialect.identifier_preparer
        name = prep.quote(self.table)
        if self.db_schema:
            name = f"{prep.quote_schema(self.db_schema)}.{name}"
        conn.execute(
            sa.text(
                f"ALTER TABLE {name} MODIFY kpi VARCHAR(200)"
                f" CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL"
            )
        )

    def _table(self, conn: sa.Connection, delivery: Delivery) -> sa.Table:
        """The table, created or widened to have a column for each KPI of the delivery."""
        import sqlalchemy as sa

        metadata = sa.MetaData(schema=self.db_schema)
        if self.layout == "long":
            table = sa.Table(
                self.table,
                metadata,
                sa.Column("period", sa.String(32), primary_key=True),
                sa.Column("kpi", sa.String(200), primary_key=True),
                sa.Column("date", sa.String(10), nullable=False),
                sa.Column("title", sa.Text),  # `kpis:` titles have no length limit
                sa.Column("value", sa.Double),
                sa.Column("updated_at", sa.Double, nullable=False),
                # not the database's default (latin1 on many servers): any title fits
                mysql_charset="utf8mb4",
                mariadb_charset="utf8mb4",
            )
            if sa.inspect(conn).has_table(self.table, schema=self.db_schema):
                self._need_key(conn, LONG_KEY)
                self._add_columns(conn, {c.name: c.type for c in table.columns})
            else:
                table.create(conn)
            self._widen_title(conn, delivery)
            self._binary_kpi(conn)
            return table
        wanted = [column_name(k) for k in delivery.ordered]
        inspector = sa.inspect(conn)
        if not inspector.has_table(self.table, schema=self.db_schema):
            table = sa.Table(
                self.table,
                metadata,
                sa.Column("period", sa.String(32), primary_key=True),
                sa.Column("date", sa.String(10), nullable=False),
                sa.Column("updated_at", sa.Double, nullable=False),
                *(sa.Column(c, sa.Double) for c in dict.fromkeys(wanted)),
            )
            table.create(conn)
            return table
        self._need_key(conn, WIDE_KEY)
        own: dict[str, Any] = {"date": sa.String(10), "updated_at": sa.Double()}
        self._add_columns(conn, own | dict.fromkeys(wanted, sa.Double()))
        return sa.Table(self.table, sa.MetaData(schema=self.db_schema), autoload_with=conn)

    def _add_columns(self, conn: sa.Connection, columns: dict[str, Any]) -> None:
        """Add to the existing table each of `columns` ({name: SQLAlchemy type}) it lacks, in
        their order: a new KPI's column, or the destination's own (`date`, `updated_at`,
        `title`, ...) that a table made beforehand may not have."""
        import sqlalchemy as sa

        inspector = sa.inspect(conn)
        have = {c["name"] for c in inspector.get_columns(self.table, schema=self.db_schema)}
        preparer = conn.dialect.identifier_preparer
        qualified = (
            f"{preparer.quote(self.db_schema)}.{preparer.quote(self.table)}"
            if self.db_schema
            else preparer.quote(self.table)
        )
        for column, kind in columns.items():
            if column not in have:
                sql_type = kind.compile(dialect=conn.dialect)
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {qualified} ADD COLUMN {preparer.quote(column)} {sql_type}"
                    )
                )
                have.add(column)

    def _need_key(self, conn: sa.Connection, key: tuple[str, ...]) -> None:
        """Refuse (DeliveryError, refused) a table made beforehand without a primary key or
        unique index on exactly `key`: every upsert finds its row by it (MariaDB/MySQL's
        `ON DUPLICATE KEY` without one added a second row for the period at each re-run;
        PostgreSQL and SQLite refused `ON CONFLICT` in their words)."""
        import sqlalchemy as sa

        inspector = sa.inspect(conn)
        wanted = set(key)
        primary = inspector.get_pk_constraint(self.table, schema=self.db_schema)
        keys: list[set[str | None]] = [set(primary["constrained_columns"])]
        keys += [
            set(unique["column_names"])
            for unique in inspector.get_unique_constraints(self.table, schema=self.db_schema)
        ]
        keys += [
            set(index["column_names"])
            for index in inspector.get_indexes(self.table, schema=self.db_schema)
            if index.get("unique")
        ]
        if conn.dialect.name == "sqlite":  # its reflection leaves out a column's own UNIQUE
            prep = conn.dialect.identifier_preparer
            at = f"{prep.quote(self.db_schema)}." if self.db_schema else ""
            for index in conn.exec_driver_sql(f"PRAGMA {at}index_list({prep.quote(self.table)})"):
                if index[2] and not index[4]:  # (seq, name, unique, origin, partial)
                    info = f"PRAGMA {at}index_info({prep.quote(index[1])})"
                    keys.append({row[2] for row in conn.exec_driver_sql(info)})
        if wanted in keys:
            return
        columns = ", ".join(key)
        raise delivery_error(
            f"sql destination {self.name!r}: table {self.table} has no primary key ({columns}), "
            "so a re-run of the period would add a second row; add it "
            f"(ALTER TABLE {self.table} ADD PRIMARY KEY ({columns})) or name another `table`",
            transient=False,
            refused=True,
        )

    def _upsert(self, conn: sa.Connection, table: sa.Table, record: dict[str, Any]) -> None:
        """Insert or update by primary key, atomically in the database's own dialect."""
        # the layout's key, which `_need_key` found a primary key or unique index on (a table
        # made beforehand may have another primary key, an `id`, beside a unique period)
        key = list(LONG_KEY if self.layout == "long" else WIDE_KEY)
        changes = {k: v for k, v in record.items() if k not in key}
        dialect = conn.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pg = pg_insert(table).values(**record)
            conn.execute(pg.on_conflict_do_update(index_elements=key, set_=changes))
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as lite_insert

            lite = lite_insert(table).values(**record)
            conn.execute(lite.on_conflict_do_update(index_elements=key, set_=changes))
        elif dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as my_insert

            my = my_insert(table).values(**record)
            conn.execute(my.on_duplicate_key_update(**changes))
        else:  # any other database: update, insert when nothing was there (in one transaction)
            import sqlalchemy as sa

            where = sa.and_(*(table.c[k] == record[k] for k in key))
            if conn.execute(sa.update(table).where(where).values(**changes)).rowcount == 0:
                conn.execute(sa.insert(table).values(**record))
