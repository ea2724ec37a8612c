"""The results store: one row per run in DuckDB (table ``runs``) or Parquet, chosen by suffix.

A row holds the run's key (``config_hash``, ``design``, ``seed``), the base ``scenario``, the
overrides under their dotted keys, every run-result field flattened with dots
(``alloc_latency_ns.p99``; lists as JSON text), the allocation-latency histogram in HdrHistogram's
base64 encoding (``alloc_latency_hist``, null when the run result has none) so that seeds can be
merged, and ``error`` (null unless the run raised).

Writes are transactional so that an interruption at any point loses no finished row and
duplicates none:

- DuckDB: each row is inserted in its own transaction, after checking its key is not there yet.
- Parquet: a Parquet file cannot be appended in place, so rows go to a sidecar DuckDB journal
  (``OUT.parquet.journal.duckdb``) exactly as above; :meth:`ParquetStore.close` compacts the
  journal into ``OUT.parquet.tmp``, fsyncs it, renames it over ``OUT.parquet`` and only then
  deletes the journal. A journal found at open time is the authoritative state of an
  interrupted sweep; without one, the rows of an existing ``OUT.parquet`` seed a new journal.

Ctrl-C or SIGTERM arriving during a commit or the compaction takes effect right after it, so
neither is ever half done (DuckDB would otherwise abort the statement with "Query interrupted").

The schema grows as new result fields appear; a column whose values outgrow its type (an
integer column that receives a float) is widened, never truncated.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reclaimlab.sweep.spec import RunSpec, SweepError

KEY_COLUMNS = {"config_hash": "VARCHAR", "design": "VARCHAR", "seed": "BIGINT"}
# The interfaces.md run result, flattened; declared so every store has them even when null.
RESULT_COLUMNS = {
    "scenario": "VARCHAR", "outcome": "VARCHAR", "sim_time_ns": "BIGINT", "events": "BIGINT",
    "wall_s": "DOUBLE", "digest": "VARCHAR", "warnings": "VARCHAR", "deadlocks": "VARCHAR",
    **{f"alloc_latency_ns.{k}": "BIGINT" for k in ("count", "p50", "p90", "p99", "p999", "max")},
    **{f"direct_reclaim.{k}": "BIGINT" for k in ("count", "total_ns", "p99_ns", "max_ns")},
    **{f"inodes.{k}": "BIGINT" for k in ("evicted", "evicted_in_reclaim", "deferred", "leaked")},
    "invariants.ok": "BOOLEAN", "invariants.violations": "VARCHAR",
    "alloc_latency_hist": "VARCHAR", "error": "VARCHAR",
}
# Widening order: a column only ever moves right.
TYPE_RANK = {"BOOLEAN": 0, "BIGINT": 1, "DOUBLE": 2, "VARCHAR": 3}
TABLE = "runs"


def make_row(run: RunSpec, result: dict | None, error: str | None = None) -> dict[str, Any]:
    """The row of one run: key, overrides, flattened result, histogram, error."""
    row: dict[str, Any] = {"config_hash": run.config_hash, "design": run.design,
                           "seed": run.seed, "scenario": run.scenario}
    row.update(run.config)
    flat: dict[str, Any] = {}
    flatten("", result or {}, flat)
    for key, value in flat.items():
        row.setdefault(key, value)  # the key and the overrides stay as the sweep asked
    row.setdefault("alloc_latency_hist", None)
    row["error"] = error
    return row


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Nested dicts become dotted keys; lists become JSON text; bytes become ASCII text."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(value, sort_keys=True, default=str)
    elif isinstance(value, bytes):
        out[prefix] = value.decode("ascii")
    elif value is None or isinstance(value, (bool, int, float, str)):
        out[prefix] = value
    elif hasattr(value, "item"):  # numpy scalars
        out[prefix] = value.item()
    else:
        out[prefix] = str(value)


def sql_type(value: Any) -> str | None:
    """The DuckDB type a Python value needs; None for null (it fits any column)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT" if -(2**63) <= value < 2**63 else "DOUBLE"
    if isinstance(value, float):
        return "DOUBLE"
    return "VARCHAR"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb():
    try:
        import duckdb
    except ImportError:
        raise SweepError("writing results needs duckdb: pip install 'reclaimlab[sweep]'") from None
    return duckdb


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block is done, then deliver them to their handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
           for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in caught[:1]:
            signal.raise_signal(sig)


class DuckDBStore:
    """Rows in table ``runs`` of a DuckDB file, one transaction per row."""

    def __init__(self, path: str | Path) -> None:
        duckdb = _duckdb()
        self.path = Path(path)
        try:
            self.con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise SweepError(f"{self.path}: cannot open the results database (is another sweep "
                             f"writing it?): {exc}") from None
        self.columns = self._load_columns()

    def _load_columns(self) -> dict[str, str]:
        """The table's columns and types; empty until the first row creates the table."""
        cols = dict(self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position", [TABLE]).fetchall())
        missing = [c for c in KEY_COLUMNS if c not in cols]
        if cols and missing:
            raise SweepError(f"{self.path}: table {TABLE} is not a sweep's "
                             f"(no column {missing[0]})")
        return cols

    def _create_table(self, row: dict[str, Any]) -> None:
        """Columns in the first row's order (key, overrides, result), then the declared rest."""
        known = {**KEY_COLUMNS, **RESULT_COLUMNS}
        order = list(row) + [c for c in known if c not in row]
        cols = {c: sql_type(row.get(c)) or known.get(c) for c in order}
        self.columns = {c: t for c, t in cols.items() if t is not None}
        spec = ", ".join(f"{quote(c)} {t}" for c, t in self.columns.items())
        self.con.execute(f"CREATE TABLE {TABLE} ({spec})")

    def keys(self) -> set[tuple[str, str, int]]:
        """The keys of the rows already stored."""
        if not self.columns:
            return set()
        return set(self.con.execute(f"SELECT config_hash, design, seed FROM {TABLE}").fetchall())

    def add(self, row: dict[str, Any]) -> bool:
        """Commit one row; False (and nothing written) if its key is already stored."""
        with signals_deferred():
            return self._add(row)

    def _add(self, row: dict[str, Any]) -> bool:
        self.con.execute("BEGIN TRANSACTION")
        try:
            if not self.columns:
                self._create_table(row)
            exists = self.con.execute(
                f"SELECT count(*) FROM {TABLE} WHERE config_hash = ? AND design = ? AND seed = ?",
                [row["config_hash"], row["design"], row["seed"]]).fetchone()[0]
            if exists:
                self.con.execute("ROLLBACK")
                return False
            self._fit_schema(row)
            names = [c for c, v in row.items() if v is not None]
            self.con.execute(
                f"INSERT INTO {TABLE} ({', '.join(map(quote, names))}) "
                f"VALUES ({', '.join('?' for _ in names)})", [row[c] for c in names])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            self.columns = self._load_columns()
            raise
        return True

    def _fit_schema(self, row: dict[str, Any]) -> None:
        """Add columns for new fields and widen those a value does not fit."""
        for name, value in row.items():
            want = sql_type(value)
            have = self.columns.get(name)
            if want is None or have == want:
                continue
            if have is None:
                self.con.execute(f"ALTER TABLE {TABLE} ADD COLUMN {quote(name)} {want}")
                self.columns[name] = want
            elif TYPE_RANK.get(want, 3) > TYPE_RANK.get(have, 3):
                self.con.execute(f"ALTER TABLE {TABLE} ALTER COLUMN {quote(name)} TYPE {want}")
                self.columns[name] = want

    def close(self) -> None:
        self.con.close()


class ParquetStore:
    """Rows journalled in a sidecar DuckDB file, compacted into the Parquet file atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".journal.duckdb")
        if not self.journal.exists():
            self._seed_journal()
        self.db = DuckDBStore(self.journal)

    def _seed_journal(self) -> None:
        """Copy an existing Parquet file's rows into a new journal, atomically by rename."""
        tmp = self.journal.with_name(self.journal.name + ".tmp")
        _remove(tmp, Path(f"{tmp}.wal"))
        if self.path.exists():
            con = _duckdb().connect(str(tmp))
            con.execute(f"CREATE TABLE {TABLE} AS SELECT * FROM read_parquet(?)", [str(self.path)])
            con.close()
            os.replace(tmp, self.journal)

    def keys(self) -> set[tuple[str, str, int]]:
        return self.db.keys()

    def add(self, row: dict[str, Any]) -> bool:
        return self.db.add(row)

    def close(self) -> None:
        """Compact the journal into the Parquet file (write, fsync, rename), then drop it."""
        with signals_deferred():
            self._compact()

    def _compact(self) -> None:
        if not self.db.columns:  # nothing was ever stored
            self.db.close()
            _remove(self.journal, Path(f"{self.journal}.wal"))
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.db.con.execute(f"COPY {TABLE} TO '{_sql_str(tmp)}' (FORMAT parquet)")
        self.db.close()
        _fsync(tmp)
        os.replace(tmp, self.path)
        _fsync(self.path.parent)
        _remove(self.journal, Path(f"{self.journal}.wal"))


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def open_store(path: str | Path) -> DuckDBStore | ParquetStore:
    """The store for ``--out``: ``.duckdb`` or ``.parquet``, anything else is a user error."""
    path = Path(path)
    if path.suffix == ".duckdb":
        return DuckDBStore(path)
    if path.suffix == ".parquet":
        return ParquetStore(path)
    raise SweepError(f"--out {path}: the suffix must be .duckdb or .parquet")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a finished store, as dicts (for reports and tests)."""
    duckdb = _duckdb()
    path = Path(path)
    if not path.exists():
        raise SweepError(f"{path}: no such results file")
    if path.suffix == ".parquet":
        con = duckdb.connect()
        cur = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
    else:
        con = duckdb.connect(str(path), read_only=True)
        cur = con.execute(f"SELECT * FROM {TABLE}")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    con.close()
    return rows
