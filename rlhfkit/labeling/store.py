"""The label store: every item to label and every judgment on it, in one SQLite file.

Items are what people look at: a *pair* (a prompt and two responses), a *ranking* (a prompt and K responses) or a
*demonstration* (a prompt to answer). Judgments are what they decide. A judgment is never deleted: editing an item
marks the older judgment ``superseded`` and undo marks one ``undone``, so the file is also an audit log.

A judgment answers one *criterion*: "overall" unless the caller names another ("helpful", "harmless", ...). A
person judging a pair on several criteria makes one judgment per criterion, recorded together in one transaction
(`record_many`) and undone together (`undo`); every export, count and agreement statistic is per criterion.

Why SQLite, and how it is kept safe:
- WAL journal + ``synchronous=FULL``: `record()` returns only after its transaction is committed and the WAL is
  fsynced, so a killed process or a kernel restart never loses an acknowledged judgment.
- Writes are short ``BEGIN IMMEDIATE`` transactions, so several processes (several annotators, or one annotator
  in several notebooks) can share a file; a busy file is waited for and retried, never silently skipped.
- Two unique indexes make the rules hold even under races: one *active* judgment per (item, annotator), and one
  judgment per (annotator, event_id), which turns a double click into a no-op.
- The ``meta`` table holds the schema version; a file written by a newer rlhfkit is refused, not misread, and an
  older file is migrated in place in one transaction (version 1 had no criteria: its judgments become "overall").

This module imports only the standard library and rlhfkit.data, whose modules load pandas and datasets only when
used, so a labeling process starts fast. Rows are checked by the same value checks as every data loader
(`rlhfkit.data.errors`), and a bad row raises the same `DataValidationError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from rlhfkit.data.errors import DataValidationError, _check_text, _is_missing, _RowProblem, _text_value
from rlhfkit.data.rankings import ranking_to_pairs

__all__ = ["LabelStore", "LabelStoreError", "SchemaVersionError", "CHOICES", "KINDS", "OVERALL", "STATUSES"]

CHOICES = ("a", "b", "tie", "both_bad", "skip")  # "a"/"b" = the item's stored candidate 0 / 1, not screen sides
KINDS = ("pair", "ranking", "demonstration")
STATUSES = ("active", "undone", "superseded")
OVERALL = "overall"  # the criterion of a judgment that names none (and of every judgment in a version 1 file)

_BUSY_TIMEOUT_MS = 30_000  # SQLite waits this long for another process's write before reporting "locked"
_RETRY_SECONDS = 120.0  # and we retry "locked"/"busy" answers for this long before giving up loudly
_RATE_WINDOW = 20  # progress()'s rate uses the annotator's last 20 judgments ...
_RATE_MAX_AGE = 600.0  # ... made in the last 10 minutes

# The current schema (version 2), for a new file. An older file is brought here by _MIGRATIONS.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('pair', 'ranking', 'demonstration')),
    prompt      TEXT NOT NULL,
    meta        TEXT NOT NULL DEFAULT '{}',       -- JSON object
    source      TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL UNIQUE,             -- sha256 of (kind, prompt, candidates): identical items dedupe
    created     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_kind ON items (kind, id);
CREATE TABLE IF NOT EXISTS candidates (
    item_id  INTEGER NOT NULL REFERENCES items (id),
    position INTEGER NOT NULL,                    -- 0-based; pair choice "a" is position 0, "b" position 1
    text     TEXT NOT NULL,
    PRIMARY KEY (item_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS judgments (
    id            INTEGER PRIMARY KEY,
    item_id       INTEGER NOT NULL REFERENCES items (id),
    annotator     TEXT NOT NULL,
    choice        TEXT CHECK (choice IS NULL OR choice IN ('a', 'b', 'tie', 'both_bad', 'skip')),
    ranking       TEXT,                           -- JSON list of candidate positions, best first
    text          TEXT,                           -- a demonstration's response
    rationale     TEXT,
    display_order TEXT,                           -- JSON list: candidate positions as shown, left/top first
    seconds       REAL,                           -- time the annotator spent on the item, as the front end measured
    event_id      TEXT,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'undone', 'superseded')),
    supersedes    INTEGER REFERENCES judgments (id),
    created       REAL NOT NULL,                  -- unix seconds
    changed       REAL,                           -- when the status last changed
    criterion     TEXT NOT NULL DEFAULT 'overall' CHECK (criterion <> '')  -- version 2
);
CREATE UNIQUE INDEX IF NOT EXISTS judgments_one_active ON judgments (item_id, annotator, criterion)
    WHERE status = 'active';
CREATE UNIQUE INDEX IF NOT EXISTS judgments_event ON judgments (annotator, event_id, criterion)
    WHERE event_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS judgments_by_annotator ON judgments (annotator, status, id);
"""

# Schema migrations, keyed by the version they upgrade *from*; each runs inside the opening write transaction, so
# a file is migrated whole or not at all.
_MIGRATIONS: dict[int, str] = {
    # 1 -> 2: judgments gain a criterion (every existing one answered the only question asked: "overall"), and
    # "one active judgment" / "one judgment per event" hold per criterion.
    1: """
ALTER TABLE judgments ADD COLUMN criterion TEXT NOT NULL DEFAULT 'overall' CHECK (criterion <> '');
DROP INDEX judgments_one_active;
CREATE UNIQUE INDEX judgments_one_active ON judgments (item_id, annotator, criterion) WHERE status = 'active';
DROP INDEX judgments_event;
CREATE UNIQUE INDEX judgments_event ON judgments (annotator, event_id, criterion) WHERE event_id IS NOT NULL;
""",
}


class LabelStoreError(RuntimeError):
    """A label store file that cannot be used (not a label store, unreadable, or a database kept locked)."""


class SchemaVersionError(LabelStoreError):
    """The file was written by a newer rlhfkit whose schema this version cannot read."""


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _retrying(fn, what: str):
    """Run fn(), retrying SQLite's "database is locked/busy" answers with backoff (another process is writing)."""
    deadline = time.monotonic() + _RETRY_SECONDS
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() > deadline:
                if _is_locked(exc):
                    raise LabelStoreError(
                        f"{what}: the database stayed locked for {_RETRY_SECONDS:.0f} s "
                        f"(another process holds a write transaction open)"
                    ) from exc
                raise
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.25)


def _statements(script: str) -> list[str]:
    """Split an SQL script into statements (sqlite3.complete_statement knows about comments and strings)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement: {current.strip()[:80]!r}")
    return out


def _fingerprint(kind: str, prompt: str, candidates: list[str]) -> str:
    return hashlib.sha256(json.dumps([kind, prompt, candidates], ensure_ascii=False).encode()).hexdigest()


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy / pandas scalars from DataFrames
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _rows_of(rows: Any, what: str) -> list[Any]:
    """Records from a list/iterable of dicts, a pandas DataFrame or a datasets.Dataset."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        return rows.to_dict("records")
    if isinstance(rows, (str, bytes, dict)):
        raise TypeError(
            f"{what}: expected an iterable of rows (a list of dicts, a DataFrame or a Dataset), "
            f"got a single {type(rows).__name__}"
        )
    return list(rows)


class _RowChecker:
    """Validates the rows of one add_* call; errors name the call (or source), the 1-based row and the field."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, row: int, field: str | None, reason: str, detail: str | None = None, expected: str | None = None):
        return DataValidationError(self.where, row, field, reason, detail=detail, expected=expected)

    def record(self, row: int, value: Any, required: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(
                row,
                None,
                "wrong type",
                f"got {type(value).__name__}",
                "a dict with " + ", ".join(repr(k) for k in required),
            )
        return value

    def text(self, row: int, record: dict, field: str) -> str:
        try:
            return _check_text(record, field, what="row")
        except _RowProblem as problem:
            raise problem.at(self.where, row) from None

    def text_value(self, row: int, value: Any, field: str) -> str:
        try:
            return _text_value(value, field)
        except _RowProblem as problem:
            raise problem.at(self.where, row) from None

    def meta(self, row: int, record: dict, known: tuple[str, ...]) -> str:
        """The item's meta as JSON: the row's "meta" dict plus any extra columns (kept, not dropped)."""
        meta = record.get("meta")
        if _is_missing(meta):
            meta = {}
        if not isinstance(meta, dict):
            raise self.fail(row, "meta", "wrong type", f"got {type(meta).__name__}", "a dict")
        meta = dict(meta)
        for key, value in record.items():
            if key not in known and key != "meta":
                meta.setdefault(str(key), None if _is_missing(value) else value)
        try:
            return json.dumps(meta, ensure_ascii=False, default=_json_default, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise self.fail(
                row,
                "meta",
                "not JSON serialisable",
                str(exc),
                "a dict of JSON values (str, number, bool, None, lists, dicts)",
            ) from None


class LabelStore:
    """Items to label and the judgments made on them, in one SQLite file shared by any number of processes.

    ``LabelStore(path)`` creates the file (and its folder) or opens an existing one. Use it as a context manager or
    call `close()`. Item ids and judgment ids are integers that never change. Times are unix seconds (float).
    """

    SCHEMA_VERSION = 2

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().resolve()
        if self.path.is_dir():
            raise LabelStoreError(f"{self.path} is a folder; give the path of a label store file (e.g. labels.db)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # one connection; widgets' comm callbacks may arrive on other threads
        self._conn = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            self._open()
        except BaseException:
            self._conn.close()
            raise

    # -- opening and the schema -------------------------------------------------------------------------------

    def _open(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        try:
            version = _retrying(self._stored_version, f"opening {self.path}")
        except sqlite3.DatabaseError as exc:
            raise LabelStoreError(f"{self.path} is not a label store (SQLite says: {exc})") from None
        if version is not None and version > self.SCHEMA_VERSION:
            # Checked before anything is written, so the newer file is left exactly as it was.
            raise SchemaVersionError(
                f"{self.path} uses label store schema version {version}, but this rlhfkit reads versions up to "
                f"{self.SCHEMA_VERSION}: upgrade rlhfkit to open it (the file was not changed)"
            )
        mode = _retrying(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0], f"opening {self.path}")
        if str(mode).lower() != "wal":
            raise LabelStoreError(
                f"{self.path}: SQLite refused WAL mode (got {mode!r}); a label store needs a "
                f"local file system that supports shared memory"
            )
        conn.execute("PRAGMA synchronous = FULL")  # fsync the WAL at every commit: acknowledged means durable
        conn.execute("PRAGMA foreign_keys = ON")
        if version != self.SCHEMA_VERSION:
            with self._write(f"creating the schema of {self.path}") as c:
                self._create_or_migrate(c)

    def _stored_version(self) -> int | None:
        conn = self._conn
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if tables - {"items", "candidates", "judgments"}:
                raise LabelStoreError(
                    f"{self.path} is an SQLite database but not a label store (tables: {sorted(tables)})"
                )
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else None

    def _create_or_migrate(self, conn: sqlite3.Connection) -> None:
        version = self._stored_version()  # again, inside the write lock: another process may have created it
        if version is None:
            for statement in _statements(_SCHEMA):  # not executescript(): it would COMMIT our transaction
                conn.execute(statement)
            from rlhfkit import __version__

            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(self.SCHEMA_VERSION)),
                    ("created", repr(time.time())),
                    ("created_by", f"rlhfkit {__version__}"),
                ],
            )
            return
        from rlhfkit import __version__

        while version < self.SCHEMA_VERSION:
            if version not in _MIGRATIONS:
                raise SchemaVersionError(f"{self.path}: no migration from label store schema {version}")
            for statement in _statements(_MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (f"migrated_from_{version}", f"rlhfkit {__version__} at {time.time()!r}"),
            )
            version += 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))

    # -- transactions -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE (retried while another process writes) ... COMMIT.

        Any exception, KeyboardInterrupt included, rolls the whole transaction back, so a batch is all or nothing.
        """
        with self._lock:
            _retrying(lambda: self._conn.execute("BEGIN IMMEDIATE"), what)
            try:
                yield self._conn
                _retrying(lambda: self._conn.execute("COMMIT"), what)
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self._lock:
            return _retrying(lambda: self._conn.execute(sql, params).fetchall(), f"reading {self.path}")

    # -- items ------------------------------------------------------------------------------------------------

    def add_pairs(self, rows: Any, *, source: str = "") -> list[int]:
        """Add pair items: rows (dicts, a DataFrame or a Dataset) with "prompt", "response_a", "response_b" and an
        optional "meta" dict; other columns are kept in meta. Returns the item ids, one per row, in row order.

        An identical item (same prompt and the same two responses in the same order) is not added twice: its
        existing id is returned. A bad row raises `rlhfkit.data.DataValidationError` naming the row and field,
        and then nothing is added.
        """
        check = _RowChecker(source or "add_pairs")
        items = []
        known = ("prompt", "response_a", "response_b")
        for row, rec in enumerate(_rows_of(rows, "add_pairs"), start=1):
            rec = check.record(row, rec, known)
            prompt = check.text(row, rec, "prompt")
            a, b = check.text(row, rec, "response_a"), check.text(row, rec, "response_b")
            if a == b:
                raise check.fail(
                    row,
                    "response_b",
                    "identical responses",
                    None,
                    "two different responses (identical ones cannot express a preference)",
                )
            items.append(("pair", prompt, [a, b], check.meta(row, rec, known)))
        return self._add_items(items, source)

    def add_rankings(self, rows: Any, *, source: str = "") -> list[int]:
        """Add ranking items: rows with "prompt" and "responses" (a list of K >= 2 distinct non-empty strings)
        and an optional "meta" dict. Returns item ids; identical items dedupe; bad rows raise
        `DataValidationError` naming row and field (nothing is added)."""
        check = _RowChecker(source or "add_rankings")
        items = []
        known = ("prompt", "responses")
        expected = "a list of at least 2 distinct non-empty strings"
        for row, rec in enumerate(_rows_of(rows, "add_rankings"), start=1):
            rec = check.record(row, rec, known)
            prompt = check.text(row, rec, "prompt")
            if "responses" not in rec:
                raise check.fail(row, "responses", "missing column", "this row has no 'responses' key", expected)
            responses = rec["responses"]
            if hasattr(responses, "tolist") and not isinstance(responses, (str, bytes)):
                responses = responses.tolist()  # numpy arrays from DataFrames / parquet
            if not isinstance(responses, (list, tuple)):
                raise check.fail(row, "responses", "wrong type", f"got {type(responses).__name__}", expected)
            if len(responses) < 2:
                raise check.fail(row, "responses", "too few responses", f"got {len(responses)}", expected)
            texts = [check.text_value(row, r, "responses") for r in responses]
            if len(set(texts)) < len(texts):
                dup = next(t for t in texts if texts.count(t) > 1)
                raise check.fail(row, "responses", "duplicate responses", f"{dup[:60]!r} appears twice", expected)
            items.append(("ranking", prompt, texts, check.meta(row, rec, known)))
        return self._add_items(items, source)

    def add_prompts(self, prompts: Any, *, source: str = "") -> list[int]:
        """Add demonstration items (a prompt for a person to answer): strings, or dicts with "prompt" and an
        optional "meta". Returns item ids; an already stored prompt returns its id."""
        check = _RowChecker(source or "add_prompts")
        if isinstance(prompts, str):
            raise TypeError("add_prompts: expected a list of prompts, got a single string")
        items = []
        for row, rec in enumerate(_rows_of(prompts, "add_prompts"), start=1):
            if isinstance(rec, str) or _is_missing(rec):
                rec = {"prompt": rec}
            rec = check.record(row, rec, ("prompt",))
            items.append(("demonstration", check.text(row, rec, "prompt"), [], check.meta(row, rec, ("prompt",))))
        return self._add_items(items, source)

    def _add_items(self, items: list[tuple[str, str, list[str], str]], source: str) -> list[int]:
        if not isinstance(source, str):
            raise TypeError(f"source must be a string, got {type(source).__name__}")
        ids: list[int] = []
        now = time.time()
        with self._write(f"adding items to {self.path}") as conn:
            seen: dict[str, int] = {}
            for kind, prompt, candidates, meta in items:
                fp = _fingerprint(kind, prompt, candidates)
                if fp not in seen:
                    row = conn.execute(
                        "INSERT INTO items (kind, prompt, meta, source, fingerprint, created) VALUES (?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (fingerprint) DO NOTHING RETURNING id",
                        (kind, prompt, meta, source, fp, now),
                    ).fetchone()
                    if row is None:  # already stored (by us earlier, or by another process)
                        row = conn.execute("SELECT id FROM items WHERE fingerprint = ?", (fp,)).fetchone()
                    else:
                        conn.executemany(
                            "INSERT INTO candidates (item_id, position, text) VALUES (?, ?, ?)",
                            [(row[0], pos, text) for pos, text in enumerate(candidates)],
                        )
                    seen[fp] = row[0]
                ids.append(seen[fp])
        return ids

    def item(self, item_id: int) -> dict:
        """One item: {"id", "kind", "prompt", "candidates": [str, ...], "meta": dict, "source"}.
        Raises KeyError for an unknown id."""
        found = self.items([int(item_id)])
        if not found:
            raise KeyError(f"no item {item_id} in {self.path}")
        return found[0]

    def items(self, item_ids: Iterable[int]) -> list[dict]:
        """Several items (as `item()` gives them) in the order of `item_ids`, unknown ids left out; two queries
        however many ids are asked for."""
        ids = [int(i) for i in item_ids]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._read(f"SELECT id, kind, prompt, meta, source FROM items WHERE id IN ({marks})", ids)
        cands: dict[int, list[str]] = {}
        for item_id, _, text in self._read(
            f"SELECT item_id, position, text FROM candidates WHERE item_id IN ({marks}) ORDER BY item_id, position", ids
        ):
            cands.setdefault(item_id, []).append(text)
        by_id = {
            r[0]: {
                "id": r[0],
                "kind": r[1],
                "prompt": r[2],
                "candidates": cands.get(r[0], []),
                "meta": json.loads(r[3]),
                "source": r[4],
            }
            for r in rows
        }
        return [by_id[i] for i in ids if i in by_id]

    def count(self, kind: str) -> int:
        """Number of items of `kind` ("pair", "ranking" or "demonstration")."""
        _check_kind(kind)
        return self._read("SELECT COUNT(*) FROM items WHERE kind = ?", (kind,))[0][0]

    def pending(
        self,
        annotator: str,
        kind: str,
        *,
        limit: int = 20,
        after_id: int | None = None,
        criteria: Iterable[str] = (OVERALL,),
    ) -> list[dict]:
        """Up to `limit` items of `kind` that `annotator` has not judged on every one of `criteria` (an active
        judgment per criterion; a skip counts as judged), in ascending id order, only ids > `after_id`. Each is
        `item(...)` plus its "display_order" for `annotator`. This is how a labeler resumes where the annotator
        stopped: the first pending item is the next to show."""
        _check_kind(kind)
        annotator = _check_annotator(annotator)
        criteria = _check_criteria(criteria, "pending")
        if int(limit) < 0:  # SQLite reads a negative LIMIT as "no limit"
            raise ValueError(f"pending: limit must be >= 0, got {limit}")
        # One NOT EXISTS per criterion, each a lookup in the unique index of active judgments (a count over the
        # item's judgments instead made opening a 10,000-item store several times slower).
        missing = " OR ".join(
            [
                "NOT EXISTS (SELECT 1 FROM judgments j WHERE j.item_id = i.id AND j.annotator = ?"
                " AND j.criterion = ? AND j.status = 'active')"
            ]
            * len(criteria)
        )
        rows = self._read(
            f"SELECT i.id FROM items i WHERE i.kind = ? AND i.id > ? AND ({missing}) ORDER BY i.id LIMIT ?",
            (
                kind,
                -1 if after_id is None else int(after_id),
                *[x for c in criteria for x in (annotator, c)],
                int(limit),
            ),
        )
        items = self.items([r[0] for r in rows])
        for it in items:
            it["display_order"] = _shuffled(it["id"], annotator, len(it["candidates"]))
        return items

    def display_order(self, item_id: int, annotator: str) -> list[int]:
        """Candidate positions in the order they are shown to `annotator` (left -> right, top -> bottom).

        A shuffle seeded by (item_id, annotator): random across items, so position bias can be measured, and the
        same every time the item is shown again (after a reopen, in another process). [] for demonstrations."""
        n = self._read("SELECT COUNT(*) FROM candidates WHERE item_id = ?", (int(item_id),))[0][0]
        if n == 0 and not self._read("SELECT 1 FROM items WHERE id = ?", (int(item_id),)):
            raise KeyError(f"no item {item_id} in {self.path}")
        return _shuffled(int(item_id), _check_annotator(annotator), n)

    # -- judgments --------------------------------------------------------------------------------------------

    def record(
        self,
        item_id: int,
        annotator: str,
        *,
        choice: str | None = None,
        ranking: list[int] | None = None,
        text: str | None = None,
        rationale: str | None = None,
        display_order: list[int] | None = None,
        seconds: float | None = None,
        event_id: str | None = None,
        criterion: str = OVERALL,
    ) -> int:
        """Record one judgment and return its id, after it is committed to disk.

        What is expected depends on the item's kind:
        - pair: `choice` in CHOICES ("a"/"b" name the stored candidates 0/1, *not* screen sides: map a side
          through `display_order`);
        - ranking: `ranking`, a permutation of the candidate positions, best first;
        - demonstration: `text`, the non-empty response;
        any kind may instead be skipped with ``choice="skip"``. `display_order` (the candidate positions as shown,
        left/top first) is what position-bias reports use; `seconds` is time spent on the item. `criterion` names
        what the judgment answers ("overall" unless given; demonstrations have only "overall").

        A repeated (annotator, event_id, criterion) returns the first judgment's id and writes nothing (a double
        click). A new judgment on an item and criterion this annotator already judged supersedes the older one (an
        edit). A bad call raises ValueError naming the item and what was expected, and writes nothing. Several
        criteria of one item go through `record_many`, so they are written, and undone, together.
        """
        return self.record_many(
            [
                dict(
                    item_id=item_id,
                    annotator=annotator,
                    choice=choice,
                    ranking=ranking,
                    text=text,
                    rationale=rationale,
                    display_order=display_order,
                    seconds=seconds,
                    event_id=event_id,
                    criterion=criterion,
                )
            ]
        )[0]

    def record_many(self, judgments: Iterable[dict]) -> list[int]:
        """Record several judgments in one transaction (all or none): each a dict of `record()`'s arguments
        ("item_id", "annotator", "choice", ...). Returns their ids. AI annotators use this: one fsync per batch."""
        ids = []
        now = time.time()
        with self._write(f"recording judgments in {self.path}") as conn:
            for j in judgments:
                unknown = set(j).difference(_RECORD_FIELDS)
                if unknown:
                    raise TypeError(
                        f"record: unknown fields {sorted(unknown)}; expected some of {sorted(_RECORD_FIELDS)}"
                    )
                if "item_id" not in j or "annotator" not in j:
                    raise TypeError("record: every judgment needs 'item_id' and 'annotator'")
                ids.append(self._record_one(conn, now, **j))
        return ids

    def _record_one(
        self,
        conn: sqlite3.Connection,
        now: float,
        item_id: int,
        annotator: str,
        *,
        choice=None,
        ranking=None,
        text=None,
        rationale=None,
        display_order=None,
        seconds=None,
        event_id=None,
        criterion=OVERALL,
    ) -> int:
        annotator = _check_annotator(annotator)
        try:
            item_id = int(item_id)
        except (TypeError, ValueError):
            raise ValueError(f"record: item_id must be an integer, got {item_id!r}") from None
        row = conn.execute(
            "SELECT kind, (SELECT COUNT(*) FROM candidates WHERE item_id = ?) FROM items WHERE id = ?",
            (item_id, item_id),
        ).fetchone()
        if row is None:
            raise ValueError(f"record: item {item_id} does not exist in {self.path}")
        kind, n = row
        where = f"record(item {item_id}, a {kind} item with {n} candidates, annotator {annotator!r})"
        criterion = _check_criteria([criterion], where)[0]
        if kind == "demonstration" and criterion != OVERALL:
            raise ValueError(f"{where}: a demonstration answers no criterion (got criterion={criterion!r})")
        choice, ranking_json, text = _check_judgment(where, kind, n, choice, ranking, text)
        order_json = _check_display_order(where, n, display_order)
        if rationale is not None and not isinstance(rationale, str):
            raise ValueError(f"{where}: rationale must be a string or None, got {type(rationale).__name__}")
        if seconds is not None:
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, numbers.Real)
                or not math.isfinite(seconds)
                or seconds < 0
            ):
                raise ValueError(f"{where}: seconds must be a finite number >= 0 or None, got {seconds!r}")
            seconds = float(seconds)
        if event_id is not None:
            if not isinstance(event_id, str) or not event_id:
                raise ValueError(f"{where}: event_id must be a non-empty string or None, got {event_id!r}")
            done = conn.execute(
                "SELECT id FROM judgments WHERE annotator = ? AND event_id = ? AND criterion = ?",
                (annotator, event_id, criterion),
            ).fetchone()
            if done:  # a repeated event (double click, re-sent message): acknowledged already
                return done[0]
        previous = conn.execute(
            "SELECT id FROM judgments WHERE item_id = ? AND annotator = ? AND criterion = ? AND status = 'active'",
            (item_id, annotator, criterion),
        ).fetchone()
        if previous:
            conn.execute("UPDATE judgments SET status = 'superseded', changed = ? WHERE id = ?", (now, previous[0]))
        cur = conn.execute(
            "INSERT INTO judgments (item_id, annotator, choice, ranking, text, rationale, display_order, seconds,"
            " event_id, criterion, status, supersedes, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?)",
            (
                item_id,
                annotator,
                choice,
                ranking_json,
                text,
                rationale,
                order_json,
                seconds,
                event_id,
                criterion,
                previous[0] if previous else None,
                now,
            ),
        )
        return cur.lastrowid

    def undo(self, annotator: str, *, kind: str | None = None) -> dict | None:
        """Mark `annotator`'s most recent active judgment (on items of `kind`, when given) "undone" (its item
        becomes pending again) and return it; None when there is nothing to undo. Nothing is deleted. A widget
        passes its kind, so "undo" in a ranking widget never undoes a pair judged in another widget.

        The judgments on other criteria of the same item recorded in the same `record_many` call (one submission
        of a multi-criteria widget) are undone with it; the returned dict lists every criterion undone under
        "criteria"."""
        annotator = _check_annotator(annotator)
        kind_filter, params = (
            ("", (annotator,))
            if kind is None
            else (" AND item_id IN (SELECT id FROM items WHERE kind = ?)", (annotator, _check_kind(kind)))
        )
        with self._write(f"undoing in {self.path}") as conn:
            row = conn.execute(
                "SELECT id FROM judgments WHERE annotator = ? AND status = 'active'"
                + kind_filter
                + " ORDER BY id DESC LIMIT 1",
                params,
            ).fetchone()
            if row is None:
                return None
            # The whole submission: same annotator, item and transaction time (record_many stamps one time).
            group = conn.execute(
                "SELECT j.id, j.criterion FROM judgments j JOIN judgments latest ON latest.id = ?"
                " WHERE j.annotator = latest.annotator AND j.item_id = latest.item_id"
                " AND j.created = latest.created AND j.status = 'active' ORDER BY j.id",
                (row[0],),
            ).fetchall()
            now = time.time()
            conn.executemany(
                "UPDATE judgments SET status = 'undone', changed = ? WHERE id = ?", [(now, g[0]) for g in group]
            )
        undone = self._judgment_rows("j.id = ?", (row[0],))[0]
        undone["criteria"] = [g[1] for g in group]
        return undone

    def judgment(self, judgment_id: int) -> dict:
        """One judgment as a dict (any status); KeyError for an unknown id."""
        rows = self._judgment_rows("j.id = ?", (int(judgment_id),))
        if not rows:
            raise KeyError(f"no judgment {judgment_id} in {self.path}")
        return rows[0]

    def history(
        self, annotator: str, limit: int = 10, *, kind: str | None = None, criterion: str | None = None
    ) -> list[dict]:
        """`annotator`'s most recent active judgments (on items of `kind` and on `criterion`, when given), newest
        first (for a "recent decisions" list to edit)."""
        where, params = "j.annotator = ? AND j.status = 'active'", [_check_annotator(annotator)]
        if kind is not None:
            where += " AND i.kind = ?"
            params.append(_check_kind(kind))
        if criterion is not None:
            where += " AND j.criterion = ?"
            params.append(_check_criteria([criterion], "history")[0])
        return self._judgment_rows(where, params, order="j.id DESC", limit=int(limit))

    def choices(self, item_id: int, annotator: str) -> dict[str, str]:
        """{criterion: choice} of `annotator`'s active judgments on one item (what a multi-criteria widget shows
        when the decision is opened for editing)."""
        rows = self._read(
            "SELECT criterion, choice FROM judgments WHERE item_id = ? AND annotator = ? AND status = 'active'"
            " ORDER BY id",
            (int(item_id), _check_annotator(annotator)),
        )
        return {criterion: choice for criterion, choice in rows}

    def judgments(
        self,
        *,
        annotator: str | None = None,
        kind: str | None = None,
        criterion: str | None = None,
        active_only: bool = True,
    ):
        """Judgments as a pandas DataFrame, oldest first: id, item_id, annotator, choice, ranking (list of
        candidate positions, best first), text, rationale, display_order (list), seconds, event_id, criterion,
        status, supersedes, created, changed, kind, prompt. `criterion` keeps one criterion's (all when None);
        `active_only=False` includes undone and superseded ones."""
        import pandas as pd

        where, params = ["1"], []
        if annotator is not None:
            where.append("j.annotator = ?")
            params.append(annotator)
        if criterion is not None:
            where.append("j.criterion = ?")
            params.append(_check_criteria([criterion], "judgments")[0])
        if kind is not None:
            where.append("i.kind = ?")
            params.append(_check_kind(kind))
        if active_only:
            where.append("j.status = 'active'")
        return pd.DataFrame(self._judgment_rows(" AND ".join(where), params), columns=list(_JUDGMENT_COLUMNS))

    def _judgment_rows(self, where: str, params, order: str = "j.id", limit: int | None = None) -> list[dict]:
        sql = (
            f"SELECT {', '.join('j.' + c for c in _JUDGMENT_COLUMNS[:-2])}, i.kind, i.prompt FROM judgments j "
            f"JOIN items i ON i.id = j.item_id WHERE {where} ORDER BY {order}"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = []
        for row in self._read(sql, tuple(params)):
            d = dict(zip(_JUDGMENT_COLUMNS, row))
            for key in ("ranking", "display_order"):
                if d[key] is not None:
                    d[key] = json.loads(d[key])
            out.append(d)
        return out

    def progress(self, annotator: str, kind: str, *, criterion: str = OVERALL) -> dict:
        """{"done", "total", "skipped", "labelled", "left", "per_minute"} for `annotator` on items of `kind`.

        "done" counts items with an active judgment, skips included (so done == total when nothing is pending);
        "skipped" is how many of those are skips, "labelled" how many are real decisions (done - skipped), "left"
        how many are still pending (total - done): labelled + skipped + left == total. "per_minute" is the recent
        pace: the annotator's last 20 judgments of this kind made within the last 10 minutes, 0.0 with fewer than
        two. Counts are of one `criterion` ("overall" unless given)."""
        _check_kind(kind)
        annotator = _check_annotator(annotator)
        criterion = _check_criteria([criterion], "progress")[0]
        done, skipped = self._read(
            "SELECT COUNT(*), COALESCE(SUM(j.choice = 'skip'), 0) FROM judgments j JOIN items i ON i.id = j.item_id"
            " WHERE j.annotator = ? AND j.status = 'active' AND i.kind = ? AND j.criterion = ?",
            (annotator, kind, criterion),
        )[0]
        times = [
            r[0]
            for r in self._read(
                "SELECT j.created FROM judgments j JOIN items i ON i.id = j.item_id "
                "WHERE j.annotator = ? AND i.kind = ? AND j.criterion = ?"
                " AND j.created > ? ORDER BY j.id DESC LIMIT ?",
                (annotator, kind, criterion, time.time() - _RATE_MAX_AGE, _RATE_WINDOW),
            )
        ]
        span = (max(times) - min(times)) if len(times) >= 2 else 0.0
        per_minute = (len(times) - 1) / span * 60.0 if span > 0 else 0.0
        total = self.count(kind)
        return {
            "done": done,
            "total": total,
            "skipped": skipped,
            "labelled": done - skipped,
            "left": total - done,
            "per_minute": per_minute,
        }

    def annotators(self) -> list[str]:
        """Everyone who has recorded a judgment in this store (any status), sorted."""
        return [r[0] for r in self._read("SELECT DISTINCT annotator FROM judgments ORDER BY annotator")]

    def criteria(self) -> list[str]:
        """Every criterion a judgment in this store answers (any status), "overall" first, then sorted."""
        found = {r[0] for r in self._read("SELECT DISTINCT criterion FROM judgments")}
        return sorted(found, key=lambda c: (c != OVERALL, c))

    # -- export -----------------------------------------------------------------------------------------------

    def to_preferences(
        self,
        *,
        annotators: Iterable[str] | None = None,
        kinds: Iterable[str] = ("pair", "ranking"),
        criterion: str = OVERALL,
    ) -> tuple[list[dict], dict]:
        """Active judgments on one `criterion` ("overall" unless given) as preference rows in TRL's format, plus
        counts of what was left out.

        Each row: "prompt", "chosen", "rejected", then "criterion", "annotator", "item_id", "judgment_id", "source_kind"
        ("pair"/"ranking"), "chosen_position" ("left"/"right" for a pair whose display order was recorded, else
        None), "rank_chosen", "rank_rejected" (rankings; 1 = best), "rationale", "seconds", "created", "item_source".
        A ranking of K responses gives K(K-1)/2 rows. Ties, both-bad and skips express no preference: they are left
        out and counted. Several annotators on one item give one row each (mixed labels stay visible).

        Counts: {"pairs" (rows), "judgments", "pair_judgments", "rankings", "ties", "both_bad", "skipped",
        "annotators", "criterion"}.
        """
        kinds = tuple(kinds)
        for k in kinds:
            if _check_kind(k) == "demonstration":
                raise ValueError("to_preferences: demonstrations are not preferences; use demonstrations()")
        criterion = _check_criteria([criterion], "to_preferences")[0]
        where = [f"i.kind IN ({','.join('?' * len(kinds))})", "j.status = 'active'", "j.criterion = ?"]
        params = [*kinds, criterion]
        if annotators is not None:
            annotators = [annotators] if isinstance(annotators, str) else list(annotators)
            unknown = sorted(set(annotators) - set(self.annotators()))
            if unknown:
                raise ValueError(
                    f"to_preferences: no judgments by {unknown} in {self.path}; annotators here: {self.annotators()}"
                )
            where.append(f"j.annotator IN ({','.join('?' * len(annotators))})")
            params.extend(annotators)
        judged = self._judgment_rows(" AND ".join(where), params)
        items = {it["id"]: it for it in self.items(sorted({j["item_id"] for j in judged}))}

        rows: list[dict] = []
        counts = {
            "pairs": 0,
            "judgments": len(judged),
            "pair_judgments": 0,
            "rankings": 0,
            "ties": 0,
            "both_bad": 0,
            "skipped": 0,
            "annotators": sorted({j["annotator"] for j in judged}),
            "criterion": criterion,
        }
        for j in judged:
            it = items[j["item_id"]]
            extra = {
                "criterion": criterion,
                "annotator": j["annotator"],
                "item_id": it["id"],
                "judgment_id": j["id"],
                "source_kind": it["kind"],
                "chosen_position": None,
                "rationale": j["rationale"],
                "seconds": j["seconds"],
                "created": j["created"],
                "item_source": it["source"],
            }
            if j["choice"] == "skip":
                counts["skipped"] += 1
            elif it["kind"] == "pair":
                counts["pair_judgments"] += 1
                if j["choice"] in ("tie", "both_bad"):
                    counts["ties" if j["choice"] == "tie" else "both_bad"] += 1
                    continue
                best = 0 if j["choice"] == "a" else 1
                if j["display_order"]:
                    extra["chosen_position"] = "left" if j["display_order"][0] == best else "right"
                rows.append(
                    {
                        "prompt": it["prompt"],
                        "chosen": it["candidates"][best],
                        "rejected": it["candidates"][1 - best],
                        "rank_chosen": None,
                        "rank_rejected": None,
                        **extra,
                    }
                )
            else:  # a ranking: positions best first -> rank of each candidate -> every pair
                counts["rankings"] += 1
                ranks = [0] * len(j["ranking"])
                for rank, position in enumerate(j["ranking"], start=1):
                    ranks[position] = rank
                pairs = ranking_to_pairs(
                    it["prompt"], it["candidates"], ranks, extra=extra, source=str(self.path), row=j["id"]
                )
                rows.extend(pairs.rows)
        counts["pairs"] = len(rows)
        return [{c: r.get(c) for c in _PREFERENCE_COLUMNS} for r in rows], counts

    def export(self, target: str | os.PathLike = "dataset", **to_preferences_kwargs):
        """Export preferences (see `to_preferences`, whose keyword arguments this takes, e.g. annotators=[...]).

        ``"dataset"`` returns a `datasets.Dataset`; a path ending in ``.jsonl`` or ``.parquet`` is written (whole
        or not at all: a temporary file is renamed into place) and the path is returned."""
        rows, _ = self.to_preferences(**to_preferences_kwargs)
        columns = {c: [r[c] for r in rows] for c in _PREFERENCE_COLUMNS}
        if isinstance(target, str) and target == "dataset":
            import datasets

            return datasets.Dataset.from_dict(columns)
        path = Path(target).expanduser()
        suffix = path.suffix.lower()
        if suffix not in (".jsonl", ".parquet"):
            raise ValueError(
                f"export: unknown target {str(target)!r}; expected 'dataset' or a path ending in .jsonl or .parquet"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        if suffix == ".jsonl":
            with tmp.open("w", encoding="utf-8", newline="\n") as fh:
                for r in rows:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            import pandas as pd

            pd.DataFrame(columns).to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    def demonstrations(self, annotator: str | None = None) -> list[dict]:
        """Written demonstrations (SFT data), oldest first: {"prompt", "completion", "annotator", "item_id",
        "judgment_id", "seconds", "created"}. Active ones only; skips left out."""
        where, params = "i.kind = 'demonstration' AND j.status = 'active' AND j.text IS NOT NULL", []
        if annotator is not None:
            where += " AND j.annotator = ?"
            params.append(annotator)
        return [
            {
                "prompt": j["prompt"],
                "completion": j["text"],
                "annotator": j["annotator"],
                "item_id": j["item_id"],
                "judgment_id": j["id"],
                "seconds": j["seconds"],
                "created": j["created"],
            }
            for j in self._judgment_rows(where, params)
        ]

    # -- housekeeping -----------------------------------------------------------------------------------------

    def integrity_check(self) -> str:
        """SQLite's PRAGMA integrity_check answer: "ok" for a sound file."""
        return "\n".join(str(r[0]) for r in self._read("PRAGMA integrity_check"))

    def close(self) -> None:
        """Close the connection (idempotent). Everything recorded is already on disk."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"


# The fields of one judgment that record() takes (and record_many's rows), in the judgments table's column order.
_RECORD_FIELDS = (
    "item_id",
    "annotator",
    "choice",
    "ranking",
    "text",
    "rationale",
    "display_order",
    "seconds",
    "event_id",
    "criterion",
)
_JUDGMENT_COLUMNS = ("id", *_RECORD_FIELDS, "status", "supersedes", "created", "changed", "kind", "prompt")
_PREFERENCE_COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "criterion",
    "annotator",
    "item_id",
    "judgment_id",
    "source_kind",
    "chosen_position",
    "rank_chosen",
    "rank_rejected",
    "rationale",
    "seconds",
    "created",
    "item_source",
)


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    return kind


def _check_criteria(criteria: Iterable[str], where: str) -> list[str]:
    """Criterion names: non-empty strings without surrounding spaces, at least one, none twice."""
    if isinstance(criteria, str):
        criteria = [criteria]
    out = list(criteria)
    for c in out:
        if not isinstance(c, str) or not c.strip() or c != c.strip():
            raise ValueError(f"{where}: a criterion is a non-empty name without surrounding spaces, got {c!r}")
    if not out or len(set(out)) < len(out):
        raise ValueError(f"{where}: expected one or more distinct criteria, got {out!r}")
    return out


def _check_annotator(annotator: str) -> str:
    if not isinstance(annotator, str) or not annotator.strip():
        raise ValueError(f"annotator must be a non-empty string (a name or id), got {annotator!r}")
    return annotator


def _shuffled(item_id: int, annotator: str, n: int) -> list[int]:
    # Seeded from a hash of (item, annotator), not Python's hash(), so it is the same in every process.
    seed = int.from_bytes(hashlib.sha256(f"{item_id}\0{annotator}".encode()).digest()[:8], "big")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def _is_permutation(value: Any, n: int) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == n
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
        and sorted(int(v) for v in value) == list(range(n))
    )


def _check_judgment(where: str, kind: str, n: int, choice, ranking, text) -> tuple[str | None, str | None, str | None]:
    """Validate what was decided against the item's kind; returns (choice, ranking as JSON, text)."""
    if choice == "skip":
        if ranking is not None or text is not None:
            raise ValueError(f"{where}: a skip carries no ranking or text")
        return "skip", None, None
    if kind == "pair":
        if ranking is not None or text is not None:
            raise ValueError(f"{where}: expected choice=, one of {CHOICES}; ranking/text are for other kinds")
        if choice not in CHOICES:
            raise ValueError(
                f"{where}: expected choice to be one of {CHOICES}, got {choice!r} ('a'/'b' name the "
                f"stored candidates 0/1, not screen sides: map a side through display_order)"
            )
        return choice, None, None
    if kind == "ranking":
        if choice is not None or text is not None:
            raise ValueError(f"{where}: expected ranking= (or choice='skip'), got choice={choice!r}, text={text!r}")
        if hasattr(ranking, "tolist"):
            ranking = ranking.tolist()
        if not _is_permutation(ranking, n):
            raise ValueError(
                f"{where}: expected ranking to be a permutation of the candidate positions "
                f"{list(range(n))}, best first; got {ranking!r}"
            )
        return None, json.dumps([int(r) for r in ranking]), None
    if choice is not None or ranking is not None:
        raise ValueError(f"{where}: expected text= (or choice='skip'), got choice={choice!r}, ranking={ranking!r}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: expected text to be the written response, a non-empty string; got {text!r}")
    return None, None, text


def _check_display_order(where: str, n: int, display_order) -> str | None:
    if display_order is None:
        return None
    if hasattr(display_order, "tolist"):
        display_order = display_order.tolist()
    if not _is_permutation(display_order, n):
        raise ValueError(
            f"{where}: expected display_order to be a permutation of the candidate positions "
            f"{list(range(n))} as shown (left/top first); got {display_order!r}"
        )
    return json.dumps([int(v) for v in display_order])
