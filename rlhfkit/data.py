"""Data for RLHF: tasks, prompt sets, demonstrations and preference pairs.

This module sits on the lowest floor of rlhfkit: it imports only the standard
library, pandas, pyarrow and (lazily) ``datasets``, never other rlhfkit modules.

Sections, in order:

1. Errors          - ``DataValidationError``: every problem names source, row and field.
2. Reading records - ``read_records`` / ``write_jsonl``: local JSONL, JSON, CSV, Parquet,
                     plus in-memory lists, DataFrames, ``datasets.Dataset`` and hub ids.
3. Preferences     - ``load_preferences`` -> ``PreferenceData`` in TRL's preference format,
                     with importers for HH-RLHF transcripts, message-list pairs and a
                     string prompt with message-list responses (UltraFeedback).
4. Rankings        - ``ranking_to_pairs`` / ``rankings_to_preferences`` (InstructGPT style).
5. Tasks           - ``Task`` (prompts, demonstrations, gold judge) and ``load_task``.

Row numbers are 1-based. For JSONL files the row number is the line number (blank lines
are skipped but still counted, so ``row 7`` is the 7th line of the file). For CSV files it
is the record number, not counting the header. For JSON files and in-memory data it is
the position of the record in the list.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import numbers
import os
import random
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover - typing only; datasets is imported lazily
    import datasets

__all__ = [
    "DataValidationError",
    "SkippedRow",
    "PreferenceData",
    "load_preferences",
    "RankingPairs",
    "ranking_to_pairs",
    "rankings_to_preferences",
    "Task",
    "load_task",
    "read_records",
    "write_jsonl",
]

MEMORY = "<memory>"
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

# Builtin task names -> "module:attribute". Resolved at call time so this module never
# imports the rest of rlhfkit. The attribute may be a Task or a callable returning one.
_BUILTIN_TASKS: dict[str, str] = {
    "reviews": "rlhfkit.tiny.task:reviews_task",
}


# ---------------------------------------------------------------------------
# 1. Errors
# ---------------------------------------------------------------------------


class DataValidationError(ValueError):
    """A data problem, located as precisely as possible.

    Attributes:
        source: file path, dataset id, or ``"<memory>"``.
        row: 1-based record number, or None when the problem is not about one row.
        field: column name, or None.
        reason: short category (e.g. ``"empty text"``); used to count skipped rows.
        detail: optional specifics (e.g. the JSON parser's message).
        expected: optional description of what a valid value looks like.

    ``str(err)`` reads like
    ``prefs.jsonl, row 7, field 'chosen': empty text (expected a non-empty string)``.
    """

    def __init__(
        self,
        source: str,
        row: int | None,
        field: str | None,
        reason: str,
        *,
        detail: str | None = None,
        expected: str | None = None,
    ):
        self.source = str(source)
        self.row = row
        self.field = field
        self.reason = reason
        self.detail = detail
        self.expected = expected
        super().__init__(self._message())

    def _message(self) -> str:
        where = [self.source]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        text = f"{', '.join(where)}: {self.reason}"
        if self.detail:
            text += f": {self.detail}"
        if self.expected:
            text += f" (expected {self.expected})"
        return text

    def __reduce__(self):  # keep the error picklable (e.g. across worker processes)
        return (
            _rebuild_error,
            (self.source, self.row, self.field, self.reason, self.detail, self.expected),
        )


def _rebuild_error(source, row, field, reason, detail, expected):
    return DataValidationError(source, row, field, reason, detail=detail, expected=expected)


class _RowProblem(Exception):
    """Internal: a problem in one record; the caller adds source and row number."""

    def __init__(self, field: str | None, reason: str, *, detail=None, expected=None):
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.detail = detail
        self.expected = expected

    def at(self, source: str, row: int | None) -> DataValidationError:
        return DataValidationError(source, row, self.field, self.reason, detail=self.detail, expected=self.expected)


@dataclass
class SkippedRow:
    """A record left out by a non-strict loader, and why."""

    row: int
    field: str | None
    reason: str
    message: str = ""  # the full error text, with details


# ---------------------------------------------------------------------------
# 2. Reading records
# ---------------------------------------------------------------------------
#
# Every reader produces a _Table: the records in file order, each tagged with its row
# number, where an unreadable record is replaced by the DataValidationError describing
# it. That lets strict loaders raise at the first bad row and lenient ones skip it.


@dataclass
class _Table:
    source: str
    items: list[tuple[int, dict | DataValidationError]]
    columns: list[str]  # union of record keys, in first-seen order

    def records(self) -> list[dict]:
        """All records, raising the first read error."""
        out = []
        for _, item in self.items:
            if isinstance(item, DataValidationError):
                raise item
            out.append(item)
        return out


def read_records(path: str | Path) -> list[dict]:
    """Read a local ``.jsonl``, ``.json``, ``.csv`` or ``.parquet`` file into a list of dicts.

    A ``.json`` file may hold a list of records or ``{"data": [...]}``. CSV values stay
    strings. Raises ``DataValidationError`` naming the row (and field, when it can tell)
    for invalid UTF-8 bytes, invalid JSON lines and records that are not JSON objects.
    """
    return _read_file(path).records()


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write ``rows`` as UTF-8 JSON Lines (one object per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(_native(row), ensure_ascii=False) + "\n")
    return path


def _read_file(path: str | Path) -> _Table:
    path = Path(path)
    source = str(path)
    if path.is_dir():
        raise IsADirectoryError(f"{source}: is a folder, expected a file ({', '.join(FILE_SUFFIXES)})")
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file" + ("" if path.suffix else " or folder"))
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        items = _read_jsonl(path, source)
    elif suffix == ".json":
        items = _read_json(path, source)
    elif suffix == ".csv":
        items = _read_csv(path, source)
    elif suffix == ".parquet":
        items = _read_parquet(path, source)
    else:
        raise DataValidationError(
            source,
            None,
            None,
            "unsupported file type",
            detail=repr(path.suffix),
            expected="one of " + ", ".join(FILE_SUFFIXES),
        )
    return _finish_table(source, items)


def _read_jsonl(path: Path, source: str) -> list[tuple[int, Any]]:
    items: list[tuple[int, Any]] = []
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):  # tolerate a UTF-8 byte-order mark
        raw = raw[3:]
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        # Decode leniently so a bad byte inside one string value can be pinned to its
        # field by _finish_table (surrogates mark the undecodable bytes).
        text = line.decode("utf-8", errors="surrogateescape")
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            bad_utf8 = _has_surrogates(text)
            items.append(
                (
                    lineno,
                    DataValidationError(
                        source,
                        lineno,
                        None,
                        "invalid UTF-8" if bad_utf8 else "invalid JSON",
                        detail=None if bad_utf8 else str(exc),
                        expected="UTF-8 text" if bad_utf8 else "one JSON object per line",
                    ),
                )
            )
            continue
        items.append((lineno, record))
    return items


def _read_json(path: Path, source: str) -> list[tuple[int, Any]]:
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # One document: a syntax error makes every record unreadable.
        raise DataValidationError(
            source,
            None,
            None,
            "invalid JSON",
            detail=str(exc),
            expected='a list of records or {"data": [...]}',
        ) from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataValidationError(
            source,
            None,
            None,
            "wrong type",
            detail=f"top level is {type(data).__name__}",
            expected='a list of records or {"data": [...]}',
        )
    return list(enumerate(data, start=1))


def _read_csv(path: Path, source: str) -> list[tuple[int, Any]]:
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    items: list[tuple[int, Any]] = []
    try:
        for rowno, record in enumerate(reader, start=1):
            if None in record:  # DictReader files surplus cells under the key None
                items.append(
                    (
                        rowno,
                        DataValidationError(
                            source,
                            rowno,
                            None,
                            "too many fields",
                            detail=f"{len(reader.fieldnames or []) + len(record[None])} cells",
                            expected=f"{len(reader.fieldnames or [])} cells, one per header column",
                        ),
                    )
                )
                continue
            items.append((rowno, record))
    except csv.Error as exc:
        raise DataValidationError(source, None, None, "invalid CSV", detail=str(exc)) from None
    return items


def _read_parquet(path: Path, source: str) -> list[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        records = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataValidationError(source, None, None, "unreadable Parquet file", detail=str(exc)) from None
    return list(enumerate(records, start=1))


def _finish_table(source: str, items: list[tuple[int, Any]]) -> _Table:
    """Check every record is an object with clean text; collect the column names."""
    out: list[tuple[int, dict | DataValidationError]] = []
    columns: dict[str, None] = {}
    for rowno, record in items:
        if isinstance(record, DataValidationError):
            out.append((rowno, record))
            continue
        if not isinstance(record, dict):
            out.append(
                (
                    rowno,
                    DataValidationError(
                        source,
                        rowno,
                        None,
                        "wrong type",
                        detail=f"record is {type(record).__name__}",
                        expected="a JSON object / dict",
                    ),
                )
            )
            continue
        record = {str(k): _native(v) for k, v in record.items()}
        for key in record:
            columns.setdefault(key, None)
        bad = next((k for k, v in record.items() if _has_surrogates(v)), None)
        if bad is not None:
            out.append(
                (
                    rowno,
                    DataValidationError(
                        source,
                        rowno,
                        bad,
                        "invalid UTF-8",
                        detail="undecodable bytes in the text",
                        expected="UTF-8 text",
                    ),
                )
            )
            continue
        out.append((rowno, record))
    return _Table(source, out, list(columns))


def _has_surrogates(value: Any) -> bool:
    """True if a string (or any string nested in value) holds escaped undecodable bytes."""
    if isinstance(value, str):
        # errors="surrogateescape" maps each bad byte to U+DC80..U+DCFF.
        return any("\udc80" <= ch <= "\udcff" for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogates(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_surrogates(v) for v in value)
    return False


def _native(value: Any) -> Any:
    """Turn numpy/pandas values (from DataFrames and Parquet) into plain Python ones."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_native(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (bytes, bytearray)):
        return _native(value.tolist())  # numpy arrays and numpy scalars
    return value


def _table_from(source: Any, *, split: str = "train") -> _Table:
    """Read any supported source: path, list of dicts, DataFrame, Dataset or hub id.

    A local folder (named by a ``str`` or a ``Path``, alike) is a dataset: a ``save_to_disk``
    folder, or a folder of data files as ``datasets.load_dataset`` reads it. Any other
    ``Path`` is a file; any other ``str`` is a file when it looks like one, else a hub id.
    """
    if isinstance(source, pd.DataFrame):
        return _finish_table(MEMORY, list(enumerate(source.to_dict("records"), start=1)))
    if isinstance(source, (list, tuple)):
        return _finish_table(MEMORY, list(enumerate(source, start=1)))
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        name = str(Path(source))
        return _finish_table(name, list(enumerate(_load_dataset(name, split).to_list(), start=1)))
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_file(source)):
        return _read_file(source)
    if isinstance(source, str):
        return _finish_table(source, list(enumerate(_load_dataset(source, split).to_list(), start=1)))
    ds_module = sys.modules.get("datasets")  # a Dataset can only exist if it was imported
    if ds_module is not None and isinstance(source, ds_module.Dataset):
        name = getattr(getattr(source, "info", None), "dataset_name", None) or MEMORY
        return _finish_table(name, list(enumerate(source.to_list(), start=1)))
    raise TypeError(
        f"unsupported data source of type {type(source).__name__} (expected a file path, "
        "a list of dicts, a pandas DataFrame, a datasets.Dataset or a hub dataset id)"
    )


def _looks_like_file(text: str) -> bool:
    # A name ending in a data suffix is meant as a file even if missing: reporting
    # "no such file" beats a confusing hub lookup of a typo'd path.
    return Path(text).is_file() or text.lower().endswith(FILE_SUFFIXES)


def _is_saved_dataset(folder: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return (folder / "dataset_dict.json").is_file() or (
        (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()
    )


def _load_dataset(dataset_id: str, split: str) -> "datasets.Dataset":
    """One split of a hub dataset id or of a local dataset folder."""
    import datasets

    folder = Path(dataset_id)
    try:
        if _is_saved_dataset(folder):  # load_dataset refuses these: they need load_from_disk
            ds = datasets.load_from_disk(dataset_id)
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataValidationError(
                        dataset_id,
                        None,
                        None,
                        "no such split",
                        detail=f"no split {split!r} (splits: {', '.join(map(repr, ds))})",
                        expected="split= one of those",
                    )
                ds = ds[split]
        else:
            ds = datasets.load_dataset(dataset_id, split=split)
    except DataValidationError:
        raise
    except Exception as exc:  # network, auth, missing split, offline mode...
        if folder.is_dir():
            raise DataValidationError(
                dataset_id,
                None,
                None,
                "could not load dataset folder",
                detail=f"{type(exc).__name__}: {exc}",
                expected="a folder of .jsonl/.json/.csv/.parquet files or a save_to_disk folder",
            ) from exc
        raise DataValidationError(
            dataset_id,
            None,
            None,
            "could not load dataset id",
            detail=f"{type(exc).__name__}: {exc}",
            expected="a hub dataset id reachable from here; offline (HF_HUB_OFFLINE=1) "
            "use needs a local .jsonl/.json/.csv/.parquet file",
        ) from exc
    if not isinstance(ds, datasets.Dataset):
        raise DataValidationError(
            dataset_id,
            None,
            None,
            "wrong type",
            detail=f"got {type(ds).__name__}",
            expected="a single split (pass split=...)",
        )
    return ds


# ---------------------------------------------------------------------------
# Value checks shared by preferences, rankings and tasks
# ---------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _check_text(record: dict, name: str) -> str:
    """Return record[name] if it is a non-empty string, else raise _RowProblem."""
    if name not in record:
        raise _RowProblem(
            name, "missing column", detail=f"this record has no {name!r} key", expected="a non-empty string"
        )
    return _text_value(record[name], name)


def _text_value(value: Any, field: str) -> str:
    if _is_missing(value):
        raise _RowProblem(field, "missing value", detail=repr(value), expected="a non-empty string")
    if not isinstance(value, str):
        raise _RowProblem(field, "wrong type", detail=f"got {type(value).__name__}", expected="a non-empty string")
    if not value.strip():
        raise _RowProblem(field, "empty text", expected="a non-empty string")
    return value


def _check_messages(value: Any, field: str) -> list[dict]:
    """Validate a list of {"role": str, "content": str} messages; keep only those keys."""
    expected = 'a non-empty list of {"role": str, "content": str} messages'
    if _is_missing(value):
        raise _RowProblem(field, "missing value", detail=repr(value), expected=expected)
    if not isinstance(value, list):
        raise _RowProblem(field, "wrong type", detail=f"got {type(value).__name__}", expected=expected)
    if not value:
        raise _RowProblem(field, "empty text", detail="no messages", expected=expected)
    out = []
    for i, msg in enumerate(value, start=1):
        if not isinstance(msg, dict):
            raise _RowProblem(field, "wrong type", detail=f"message {i} is {type(msg).__name__}", expected=expected)
        for key in ("role", "content"):
            if not isinstance(msg.get(key), str):
                raise _RowProblem(
                    field,
                    "wrong type",
                    detail=f"message {i} {key!r} is {type(msg.get(key)).__name__}",
                    expected=expected,
                )
        if not msg["content"].strip():
            raise _RowProblem(field, "empty text", detail=f"message {i} has empty content", expected=expected)
        # Arrow needs one struct shape per column, so drop extra keys (name, tool ids...).
        out.append({"role": msg["role"], "content": msg["content"]})
    return out


def _check_margin(value: Any) -> float:
    expected = "a finite number"
    if value is None:
        raise _RowProblem("margin", "missing value", detail="None", expected=expected)
    if isinstance(value, str):  # CSV cells are strings
        try:
            value = float(value)
        except ValueError:
            raise _RowProblem("margin", "wrong type", detail=f"got {value!r}", expected=expected) from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _RowProblem("margin", "wrong type", detail=f"got {type(value).__name__}", expected=expected)
    if not math.isfinite(value):
        raise _RowProblem("margin", "margin not finite", detail=f"got {value!r}", expected=expected)
    return float(value)


def _require_columns(table: _Table, names: Iterable[str], hint: str = "") -> None:
    """A column absent from every record: no row could be valid, so always raise.

    When no record could be read at all there is no evidence about columns: the rows' own
    read errors (e.g. ``row 1: invalid JSON``) say what is wrong, and the row loop reports them.
    """
    if table.items and all(isinstance(item, DataValidationError) for _, item in table.items):
        return
    for name in names:
        if name not in table.columns:
            found = ", ".join(map(repr, table.columns)) or "none"
            raise DataValidationError(
                table.source,
                None,
                name,
                "missing column",
                detail=f"no record has it (found columns: {found})",
                expected=f"a {name!r} column{hint}",
            )


def _rename_columns(table: _Table, renames: dict[str, str]) -> None:
    """Rename user columns (e.g. question -> prompt) in place."""
    renames = {old: new for old, new in renames.items() if old != new}
    for old, new in renames.items():
        if new in table.columns and old in table.columns:
            raise DataValidationError(
                table.source,
                None,
                old,
                "column name clash",
                detail=f"cannot rename {old!r} to {new!r}: {new!r} already exists",
            )
    if not renames:
        return
    table.columns = [renames.get(c, c) for c in table.columns]
    table.items = [
        (rowno, item if isinstance(item, DataValidationError) else {renames.get(k, k): v for k, v in item.items()})
        for rowno, item in table.items
    ]


def _dataset_from_rows(rows: list[dict], columns: list[str], source: str) -> "datasets.Dataset":
    """Build a Dataset column by column (from_list would drop keys missing from row 1)."""
    import datasets
    import pyarrow as pa

    data = {c: [r.get(c) for r in rows] for c in columns}
    try:
        return datasets.Dataset.from_dict(data)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        for c, values in data.items():  # find the column Arrow cannot type
            try:
                pa.array(values)
            except Exception as col_exc:
                raise DataValidationError(
                    source,
                    None,
                    c,
                    "inconsistent column types",
                    detail=str(col_exc),
                    expected="one value type per column",
                ) from exc
        raise


# ---------------------------------------------------------------------------
# 3. Preferences
# ---------------------------------------------------------------------------

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
ASSISTANT_MARKER = "Assistant:"


@dataclass
class PreferenceData:
    """Preference pairs in TRL's format, plus a record of what was skipped.

    ``dataset`` has columns ``prompt``, ``chosen``, ``rejected`` (all strings when
    ``format == "standard"``, all message lists when ``"conversational"``), an optional
    ``margin`` and any extra columns of the input, unchanged.
    """

    dataset: "datasets.Dataset"
    source: str
    format: str
    skipped: list[SkippedRow] = dc_field(default_factory=list)
    converted_from: str | None = None
    n_ties: int = 0  # tied pairs left out when built from rankings

    def __len__(self) -> int:
        return len(self.dataset)

    def skip_counts(self) -> dict[str, int]:
        """Number of skipped rows per reason, most common first."""
        return dict(Counter(s.reason for s in self.skipped).most_common())

    def summary(self) -> str:
        """One line: rows kept, format, rows skipped by reason, ties."""
        text = f"{self.source}: kept {len(self)} preference pairs ({self.format}"
        if self.converted_from:
            text += f", converted from {self.converted_from}"
        text += "), "
        if self.skipped:
            text += f"skipped {len(self.skipped)} ({_format_counts(self.skip_counts())})"
        else:
            text += "skipped 0"
        if self.n_ties:
            text += f", {self.n_ties} tied pairs left out"
        return text

    def to_pandas(self) -> pd.DataFrame:
        """The kept rows as a DataFrame."""
        return self.dataset.to_pandas()

    def to_jsonl(self, path: str | Path) -> Path:
        """Write the kept rows as JSON Lines (readable again by ``load_preferences``)."""
        return write_jsonl(path, self.dataset.to_list())


def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in counts.items())


def load_preferences(
    source: Any,
    *,
    split: str = "train",
    strict: bool = True,
    format: str = "auto",
    prompt_column: str = "prompt",
    chosen_column: str = "chosen",
    rejected_column: str = "rejected",
) -> PreferenceData:
    """Load and validate preference pairs into TRL's preference format.

    Args:
        source: a local ``.jsonl``/``.json``/``.csv``/``.parquet`` path, a local dataset
            folder (a ``save_to_disk`` folder or a folder of data files; ``str`` and ``Path``
            alike), a list of dicts, a pandas DataFrame, a ``datasets.Dataset``, or a hub
            dataset id (loaded with ``datasets.load_dataset(source, split=split)``).
        split: split to load for hub ids and dataset folders (ignored otherwise).
        strict: raise ``DataValidationError`` at the first bad row. With ``strict=False``
            bad rows are skipped, recorded in ``PreferenceData.skipped`` and a warning
            counts them by reason. Whole-file problems (a missing column, no valid rows)
            always raise.
        format: ``"auto"``, ``"standard"`` (strings) or ``"conversational"`` (message
            lists). Forcing a format makes rows of the other kind errors.
        prompt_column, chosen_column, rejected_column: user column names, renamed to
            ``prompt``/``chosen``/``rejected``.

    Rows with a ``prompt`` column are validated as-is, except a string prompt with message-list
    responses (ultrafeedback_binarized's layout: the lists repeat the user turn, or hold only
    the reply), which becomes conversational: the prompt as messages, the replies as
    chosen/rejected, other columns (e.g. ``score_chosen``) kept. Without one, an importer splits
    each pair: full HH-RLHF transcripts (strings; the prompt runs up to the last
    ``"Assistant:"`` both share) or message-list pairs (the prompt is the shared leading
    messages, chosen/rejected the differing final assistant message). Messages are
    reduced to their ``role`` and ``content`` keys so every row has one Arrow shape.
    """
    if format not in ("auto", "standard", "conversational"):
        raise ValueError(f"format must be 'auto', 'standard' or 'conversational', not {format!r}")
    table = _table_from(source, split=split)
    _rename_columns(table, {prompt_column: "prompt", chosen_column: "chosen", rejected_column: "rejected"})
    if not table.items:
        raise DataValidationError(table.source, None, None, "no records", expected="at least one preference pair")
    _require_columns(table, ("chosen", "rejected"), hint=" (rename yours with chosen_column=/rejected_column=)")
    has_prompt = "prompt" in table.columns

    state = _PairState(forced=None if format == "auto" else format, has_prompt=has_prompt)
    rows: list[dict] = []
    skipped: list[SkippedRow] = []
    for rowno, item in table.items:
        try:
            if isinstance(item, DataValidationError):
                raise item
            try:
                rows.append(_normalize_pair(item, state))
            except _RowProblem as problem:
                raise problem.at(table.source, rowno) from None
        except DataValidationError as err:
            if strict:
                raise
            skipped.append(SkippedRow(rowno, err.field, err.reason, str(err)))

    _report_skips(table.source, len(table.items), skipped)
    if not rows:
        counts = _format_counts(dict(Counter(s.reason for s in skipped).most_common()))
        raise DataValidationError(
            table.source,
            None,
            None,
            "no valid rows",
            detail=f"all {len(table.items)} rows were skipped ({counts})",
            expected="at least one valid preference pair",
        )
    extras = [c for c in table.columns if c not in (*PREFERENCE_COLUMNS, "margin")]
    columns = [*PREFERENCE_COLUMNS, *(["margin"] if "margin" in table.columns else []), *extras]
    return PreferenceData(
        dataset=_dataset_from_rows(rows, columns, table.source),
        source=table.source,
        format=state.format or "standard",
        skipped=skipped,
        converted_from=state.converted_from,
    )


def _report_skips(source: str, total: int, skipped: list[SkippedRow]) -> None:
    # Nothing is dropped silently: say how many rows went and why.
    if skipped:
        counts = Counter(s.reason for s in skipped).most_common()
        warnings.warn(
            f"{source}: skipped {len(skipped)} of {total} rows "
            f"({_format_counts(dict(counts))}); see .skipped for row numbers",
            stacklevel=3,
        )


@dataclass
class _PairState:
    """What the user asked for and what the valid rows so far established."""

    forced: str | None  # format fixed by the caller, or None for "auto"
    has_prompt: bool
    format: str | None = None  # fixed by the first valid row
    converted_from: str | None = None
    seen_valid: bool = False


def _normalize_pair(record: dict, state: _PairState) -> dict:
    """Validate one record and return it in TRL's format (extra columns kept)."""
    if state.has_prompt:
        prompt, chosen, rejected, fmt, kind = _explicit_pair(record, state.forced)
    else:
        prompt, chosen, rejected, fmt, kind = _imported_pair(record, state.forced)
    if chosen == rejected:
        raise _RowProblem("rejected", "chosen identical to rejected", expected="two different responses")
    margin = _check_margin(record["margin"]) if "margin" in record else None
    # TRL wants one format per dataset: later rows must match the first valid one.
    if state.seen_valid and (fmt, kind) != (state.format, state.converted_from):
        this = f"{fmt}" + (f" ({kind} import)" if kind else "")
        first = f"{state.format}" + (f" ({state.converted_from} import)" if state.converted_from else "")
        raise _RowProblem(
            "chosen" if kind else "prompt",
            "mixed formats",
            detail=f"this row is {this}, earlier rows are {first}",
            expected="every row in the same format",
        )
    state.format, state.converted_from, state.seen_valid = fmt, kind, True
    out = dict(record)
    out.update(prompt=prompt, chosen=chosen, rejected=rejected)
    if margin is not None:
        out["margin"] = margin
    return out


def _explicit_pair(record: dict, forced: str | None):
    """Rows that already have a prompt: check all three fields are of one format, or import
    a string prompt with message-list responses (UltraFeedback's layout)."""
    for name in PREFERENCE_COLUMNS:
        if name not in record:
            raise _RowProblem(
                name,
                "missing column",
                detail=f"this record has no {name!r} key",
                expected="a string or a list of messages",
            )
    prompt = record["prompt"]
    if _is_missing(prompt):
        raise _RowProblem("prompt", "missing value", detail=repr(prompt), expected="a string or a list of messages")
    fmt = "conversational" if isinstance(prompt, list) else "standard"
    if not isinstance(prompt, (str, list)):
        raise _RowProblem(
            "prompt", "wrong type", detail=f"got {type(prompt).__name__}", expected="a string or a list of messages"
        )
    if (
        isinstance(prompt, str)
        and forced != "standard"
        and any(isinstance(record[n], list) for n in ("chosen", "rejected"))
    ):
        pair = _prompt_with_message_lists(_text_value(prompt, "prompt"), record)
        return (*pair, "conversational", "string prompt + message lists")
    if forced and fmt != forced:
        raise _RowProblem(
            "prompt", "wrong format", detail=f"this row is {fmt}", expected=f"format={forced!r} as requested"
        )
    if fmt == "standard":
        values = [_text_value(record[n], n) for n in PREFERENCE_COLUMNS]
    else:
        values = [_check_messages(record[n], n) for n in PREFERENCE_COLUMNS]
    return (*values, fmt, None)


def _prompt_with_message_lists(prompt: str, record: dict):
    """A string prompt with chosen/rejected message lists, as in ultrafeedback_binarized.

    Each list either repeats the conversation up to the user turn that is the prompt and then
    holds the reply, or holds only the reply. Returns TRL's conversational pair: the shared
    conversation (or the prompt as one user message) and each list's reply messages.
    """
    expected = (
        "message lists that repeat the conversation up to a user turn equal to 'prompt' "
        "and then the assistant reply, or hold only the assistant reply"
    )
    heads, replies = {}, {}
    for name in ("chosen", "rejected"):
        messages = _check_messages(record[name], name)
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        head, reply = messages[: last_user + 1], messages[last_user + 1 :]
        if not reply or reply[0]["role"] != "assistant":
            detail = (
                f"after the last user turn come roles {[m['role'] for m in reply]}"
                if reply
                else "the list ends with a user turn"
            )
            raise _RowProblem(name, "no assistant reply", detail=detail, expected=expected)
        if head and head[-1]["content"].strip() != prompt.strip():
            raise _RowProblem(
                name,
                "prompt mismatch",
                detail=f"its user turn {_clip(head[-1]['content'])!r} is not the row's 'prompt' {_clip(prompt)!r}",
                expected=expected,
            )
        heads[name], replies[name] = head, reply
    if heads["chosen"] and heads["rejected"] and heads["chosen"] != heads["rejected"]:
        raise _RowProblem(
            "rejected",
            "prompt mismatch",
            detail="'chosen' and 'rejected' repeat different conversations before the reply",
            expected=expected,
        )
    prompt_messages = heads["chosen"] or heads["rejected"] or [{"role": "user", "content": prompt}]
    return prompt_messages, replies["chosen"], replies["rejected"]


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _imported_pair(record: dict, forced: str | None):
    """Rows without a prompt: split full transcripts or message lists into a pair."""
    for name in ("chosen", "rejected"):
        if name not in record:
            raise _RowProblem(
                name,
                "missing column",
                detail=f"this record has no {name!r} key",
                expected="a transcript string or a list of messages",
            )
    chosen_raw = record["chosen"]
    if isinstance(chosen_raw, list) and forced != "standard":
        chosen = _check_messages(chosen_raw, "chosen")
        rejected = _check_messages(record["rejected"], "rejected")
        prompt, chosen, rejected = _split_messages(chosen, rejected)
        return prompt, chosen, rejected, "conversational", "messages"
    if forced == "conversational":
        raise _RowProblem(
            "chosen",
            "wrong type",
            detail=f"got {type(chosen_raw).__name__}",
            expected="a list of messages (format='conversational')",
        )
    chosen = _text_value(chosen_raw, "chosen")
    rejected = _text_value(record["rejected"], "rejected")
    if chosen == rejected:
        raise _RowProblem("rejected", "chosen identical to rejected", expected="two different responses")
    prompt, chosen, rejected = _split_transcripts(chosen, rejected)
    return prompt, chosen, rejected, "standard", "transcript"


def _split_transcripts(chosen: str, rejected: str) -> tuple[str, str, str]:
    """HH-RLHF shape: the prompt is the shared text through the last shared 'Assistant:'."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    cut = chosen.rfind(ASSISTANT_MARKER, 0, n)  # the whole marker must be shared
    if cut < 0:
        raise _RowProblem(
            "chosen",
            "no shared Assistant turn",
            detail=f"'chosen' and 'rejected' share no {ASSISTANT_MARKER!r} marker",
            expected="two transcripts like '\\n\\nHuman: ...\\n\\nAssistant: ...' that differ "
            "only in the final reply, or a 'prompt' column",
        )
    end = cut + len(ASSISTANT_MARKER)
    responses = []
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        reply = text[end:]
        reply = reply[1:] if reply.startswith(" ") else reply
        if not reply.strip():
            raise _RowProblem(
                name,
                "empty text",
                detail=f"nothing after the last shared {ASSISTANT_MARKER!r}",
                expected="a non-empty reply",
            )
        responses.append(reply)
    return chosen[:end], responses[0], responses[1]


def _split_messages(chosen: list[dict], rejected: list[dict]):
    """Message-list pairs: shared leading messages, then one differing assistant turn each."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    expected = (
        "'chosen' and 'rejected' identical except for one final assistant message "
        "each, after at least one shared message"
    )
    tails = {"chosen": chosen[n:], "rejected": rejected[n:]}
    if n == 0:
        raise _RowProblem(
            "chosen",
            "not a single final assistant turn",
            detail="no shared leading messages to use as the prompt",
            expected=expected,
        )
    for name, tail in tails.items():
        if len(tail) != 1 or tail[0]["role"] != "assistant":
            roles = [m["role"] for m in tail]
            raise _RowProblem(
                name,
                "not a single final assistant turn",
                detail=f"the part after the shared prompt has roles {roles}",
                expected=expected,
            )
    return chosen[:n], tails["chosen"], tails["rejected"]


# ---------------------------------------------------------------------------
# 4. Rankings (InstructGPT): K ranked responses -> K*(K-1)/2 comparisons
# ---------------------------------------------------------------------------

TIE_POLICIES = ("skip", "error")


@dataclass
class RankingPairs:
    """Pairs from one ranking. ``n_pairs + n_ties == K*(K-1)//2`` always."""

    rows: list[dict]
    n_pairs: int
    n_ties: int


def ranking_to_pairs(
    prompt: str,
    responses: list[str],
    ranks: list[int],
    *,
    tie_policy: str = "skip",
    extra: dict | None = None,
    source: str = MEMORY,
    row: int | None = None,
) -> RankingPairs:
    """Expand one ranking into preference rows, one per pair of distinct ranks.

    ``ranks[i]`` is the rank of ``responses[i]`` (1 = best; equal ranks are ties).
    ``chosen`` is always the better-ranked response. Each row carries ``prompt``,
    ``chosen``, ``rejected``, ``rank_chosen``, ``rank_rejected`` and the keys of
    ``extra``. Tied pairs are left out and counted (``tie_policy="skip"``) or raise
    ``DataValidationError`` (``tie_policy="error"``). ``source``/``row`` locate errors.
    """
    if tie_policy not in TIE_POLICIES:
        raise ValueError(f"tie_policy must be one of {TIE_POLICIES}, not {tie_policy!r}")
    extra = dict(extra or {})
    reserved = {"prompt", "chosen", "rejected", "rank_chosen", "rank_rejected"} & set(extra)
    if reserved:
        raise ValueError(f"extra keys {sorted(reserved)} would overwrite pair columns")
    try:
        prompt = _text_value(prompt, "prompt")
        responses, ranks = _check_ranking(responses, ranks)
    except _RowProblem as problem:
        raise problem.at(source, row) from None

    rows, n_ties = [], 0
    for i in range(len(responses)):
        for j in range(i + 1, len(responses)):
            if ranks[i] == ranks[j]:
                if tie_policy == "error":
                    raise DataValidationError(
                        source,
                        row,
                        "ranks",
                        "tied ranks",
                        detail=f"responses {i + 1} and {j + 1} both have rank {ranks[i]}",
                        expected="distinct ranks (or tie_policy='skip')",
                    )
                n_ties += 1
                continue
            best, worst = (i, j) if ranks[i] < ranks[j] else (j, i)
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": responses[best],
                    "rejected": responses[worst],
                    "rank_chosen": ranks[best],
                    "rank_rejected": ranks[worst],
                    **extra,
                }
            )
    return RankingPairs(rows=rows, n_pairs=len(rows), n_ties=n_ties)


def _check_ranking(responses: Any, ranks: Any) -> tuple[list[str], list[int]]:
    if not isinstance(responses, (list, tuple)):
        raise _RowProblem(
            "responses", "wrong type", detail=f"got {type(responses).__name__}", expected="a list of response strings"
        )
    if not isinstance(ranks, (list, tuple)):
        raise _RowProblem(
            "ranks", "wrong type", detail=f"got {type(ranks).__name__}", expected="a list of integer ranks"
        )
    if len(ranks) != len(responses):
        raise _RowProblem(
            "ranks",
            "length mismatch",
            detail=f"{len(ranks)} ranks for {len(responses)} responses",
            expected="one rank per response",
        )
    if len(responses) < 2:
        raise _RowProblem(
            "responses", "too few responses", detail=f"got {len(responses)}", expected="at least 2 responses to compare"
        )
    texts = [_text_value(r, "responses") for r in responses]
    for r in ranks:
        if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1:
            raise _RowProblem("ranks", "wrong type", detail=f"got {r!r}", expected="integer ranks >= 1 (1 = best)")
    ranks = [int(r) for r in ranks]
    seen: dict[str, int] = {}
    for text, rank in zip(texts, ranks):
        # The same text ranked twice differently would yield a chosen == rejected pair.
        if text in seen and seen[text] != rank:
            raise _RowProblem(
                "responses",
                "duplicate responses",
                detail=f"the same response has ranks {seen[text]} and {rank}",
                expected="distinct responses",
            )
        seen.setdefault(text, rank)
    return texts, ranks


def rankings_to_preferences(
    records: Any,
    *,
    source: str = MEMORY,
    tie_policy: str = "skip",
    strict: bool = True,
) -> PreferenceData:
    """Turn ranking records ``{"prompt", "responses", "ranks", ...extra}`` into pairs.

    ``records`` may also be a local file path (JSONL/JSON/Parquet). Extra keys are
    copied onto every pair. Tied pairs left out are totalled in ``PreferenceData.n_ties``.
    ``strict=False`` skips bad records with a warning, as in ``load_preferences``.
    """
    table = _table_from(records)
    if table.source == MEMORY:
        table.source = source
    if not table.items:
        raise DataValidationError(table.source, None, None, "no records", expected="at least one ranking")
    _require_columns(table, ("prompt", "responses", "ranks"))
    rows: list[dict] = []
    skipped: list[SkippedRow] = []
    n_ties = 0
    for rowno, item in table.items:
        try:
            if isinstance(item, DataValidationError):
                raise item
            for name in ("prompt", "responses", "ranks"):
                if name not in item:
                    raise DataValidationError(
                        table.source, rowno, name, "missing column", detail=f"this record has no {name!r} key"
                    )
            extra = {k: v for k, v in item.items() if k not in ("prompt", "responses", "ranks")}
            pairs = ranking_to_pairs(
                item["prompt"],
                item["responses"],
                item["ranks"],
                tie_policy=tie_policy,
                extra=extra,
                source=table.source,
                row=rowno,
            )
        except DataValidationError as err:
            if strict:
                raise
            skipped.append(SkippedRow(rowno, err.field, err.reason, str(err)))
            continue
        rows.extend(pairs.rows)
        n_ties += pairs.n_ties

    _report_skips(table.source, len(table.items), skipped)
    if not rows:
        raise DataValidationError(
            table.source,
            None,
            None,
            "no valid rows",
            detail=f"{n_ties} tied pairs and {len(skipped)} skipped records gave no pairs",
            expected="at least one pair of differently ranked responses",
        )
    extras = [c for c in table.columns if c not in ("prompt", "responses", "ranks")]
    columns = [*PREFERENCE_COLUMNS, "rank_chosen", "rank_rejected", *extras]
    return PreferenceData(
        dataset=_dataset_from_rows(rows, columns, table.source),
        source=table.source,
        format="standard",
        skipped=skipped,
        converted_from="ranking",
        n_ties=n_ties,
    )


# ---------------------------------------------------------------------------
# 5. Tasks
# ---------------------------------------------------------------------------


@dataclass
class Task:
    """What a policy is trained to do: prompts to train and evaluate on, demonstrations for SFT, and optionally a gold judge."""

    name: str
    train_prompts: list[str]
    eval_prompts: list[str]
    demonstrations: list[dict]  # {"prompt": str, "completion": str}
    gold_judge: Callable | None = None  # scores (prompts, responses) -> list[float]
    description: str = ""

    def __post_init__(self) -> None:
        self.train_prompts = list(self.train_prompts)
        self.eval_prompts = list(self.eval_prompts)
        self.demonstrations = [dict(d) if isinstance(d, dict) else d for d in self.demonstrations]
        for attr in ("train_prompts", "eval_prompts"):
            for i, p in enumerate(getattr(self, attr)):
                if not isinstance(p, str) or not p.strip():
                    raise ValueError(f"Task {self.name!r}: {attr}[{i}] is {p!r} (expected a non-empty string)")
        for i, demo in enumerate(self.demonstrations):
            if not isinstance(demo, dict):
                raise ValueError(f"Task {self.name!r}: demonstrations[{i}] is {type(demo).__name__} (expected a dict)")
            for key in ("prompt", "completion"):
                value = demo.get(key)
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(
                        f"Task {self.name!r}: demonstrations[{i}][{key!r}] is {value!r} (expected a non-empty string)"
                    )
        # An eval prompt seen in training makes eval scores look better than they are.
        overlap = [p for p in dict.fromkeys(self.eval_prompts) if p in set(self.train_prompts)]
        if overlap:
            raise ValueError(
                f"Task {self.name!r}: {len(overlap)} prompt(s) appear in both train_prompts "
                f"and eval_prompts, e.g. {overlap[0]!r} (expected disjoint prompt sets)"
            )
        eval_set = set(self.eval_prompts)
        leaked = sum(d["prompt"] in eval_set for d in self.demonstrations)
        if leaked:
            warnings.warn(
                f"Task {self.name!r}: {leaked} demonstration(s) use eval prompts; "
                "SFT on them leaks eval data into training",
                stacklevel=3,
            )

    def sft_dataset(self, conversational: bool = True) -> "datasets.Dataset":
        """Demonstrations as TRL prompt-completion rows.

        Conversational: ``{"prompt": [{"role": "user", ...}], "completion":
        [{"role": "assistant", ...}]}``; otherwise plain strings.
        """
        import datasets

        if not self.demonstrations:
            raise ValueError(f"Task {self.name!r} has no demonstrations for SFT")
        prompts = [d["prompt"] for d in self.demonstrations]
        completions = [d["completion"] for d in self.demonstrations]
        if conversational:
            prompts = [[{"role": "user", "content": p}] for p in prompts]
            completions = [[{"role": "assistant", "content": c}] for c in completions]
        return datasets.Dataset.from_dict({"prompt": prompts, "completion": completions})

    def summary(self) -> str:
        """One line: prompt counts, demonstrations, whether a gold judge is attached."""
        judge = type(self.gold_judge).__name__ if self.gold_judge is not None else "none"
        return (
            f"Task {self.name!r}: {len(self.train_prompts)} train prompts, "
            f"{len(self.eval_prompts)} eval prompts, {len(self.demonstrations)} "
            f"demonstrations, gold judge: {judge}"
        )

    @classmethod
    def from_files(
        cls,
        name: str,
        prompts: Any,
        demonstrations: Any = None,
        *,
        eval_prompts: Any = None,
        eval_fraction: float = 0.1,
        seed: int = 0,
        prompt_column: str = "prompt",
        completion_column: str = "completion",
        gold_judge: Callable | None = None,
        description: str = "",
    ) -> "Task":
        """Build a task from local files (``.jsonl``/``.json``/``.csv``/``.parquet``).

        ``prompts`` (and ``eval_prompts``) need a ``prompt_column``; ``demonstrations``
        need ``prompt_column`` and ``completion_column``. Lists of strings or dicts are
        accepted in place of paths. Prompts are deduplicated in file order; without
        ``eval_prompts`` a ``seed``-determined ``eval_fraction`` of them is held out.
        Bad rows raise ``DataValidationError`` naming file, row and field.
        """
        train = _read_prompts(prompts, prompt_column)
        if eval_prompts is not None:
            held_out = _read_prompts(eval_prompts, prompt_column)
        else:
            train, held_out = _split_prompts(train, eval_fraction, seed)
        demos = (
            []
            if demonstrations is None
            else _read_demonstrations(_table_from(demonstrations), prompt_column, completion_column)
        )
        return cls(name, train, held_out, demos, gold_judge=gold_judge, description=description)

    @classmethod
    def from_hub(
        cls,
        name: str,
        dataset_id: str,
        *,
        prompt_column: str = "prompt",
        completion_column: str | None = None,
        split: str = "train",
        eval_split: str | None = None,
        eval_fraction: float = 0.1,
        seed: int = 0,
        gold_judge: Callable | None = None,
        description: str = "",
    ) -> "Task":
        """Build a task from a hub dataset id (``datasets.load_dataset``) or a local dataset
        folder (a folder of data files, or a ``save_to_disk`` folder).

        Prompts come from ``prompt_column`` of ``split``; eval prompts from ``eval_split``
        or a seeded ``eval_fraction`` hold-out. With ``completion_column`` the rows also
        become demonstrations (only those whose prompt is a train prompt, so SFT never
        sees eval prompts).
        """
        table = _finish_table(dataset_id, list(enumerate(_load_dataset(dataset_id, split).to_list(), 1)))
        train = _prompts_from_table(table, prompt_column)
        if eval_split is not None:
            eval_table = _finish_table(
                f"{dataset_id}[{eval_split}]",
                list(enumerate(_load_dataset(dataset_id, eval_split).to_list(), 1)),
            )
            held_out = _prompts_from_table(eval_table, prompt_column)
            held_set = set(held_out)
            train = [p for p in train if p not in held_set]  # hub splits may share prompts
        else:
            train, held_out = _split_prompts(train, eval_fraction, seed)
        demos = []
        if completion_column is not None:
            train_set = set(train)
            demos = [
                d for d in _read_demonstrations(table, prompt_column, completion_column) if d["prompt"] in train_set
            ]
        return cls(name, train, held_out, demos, gold_judge=gold_judge, description=description)


def _read_prompts(source: Any, column: str) -> list[str]:
    if isinstance(source, (list, tuple)) and all(isinstance(p, str) for p in source):
        source = [{column: p} for p in source]
    return _prompts_from_table(_table_from(source), column)


def _prompts_from_table(table: _Table, column: str) -> list[str]:
    """Validated, deduplicated prompts in file order."""
    if not table.items:
        raise DataValidationError(table.source, None, None, "no records", expected="at least one prompt")
    _require_columns(table, (column,), hint=" (set prompt_column=)")
    prompts = []
    for rowno, item in table.items:
        if isinstance(item, DataValidationError):
            raise item
        try:
            prompts.append(_check_text(item, column))
        except _RowProblem as problem:
            raise problem.at(table.source, rowno) from None
    return list(dict.fromkeys(prompts))


def _read_demonstrations(table: _Table, prompt_column: str, completion_column: str) -> list[dict]:
    _require_columns(table, (prompt_column, completion_column), hint=" (set prompt_column=/completion_column=)")
    demos = []
    for rowno, item in table.items:
        if isinstance(item, DataValidationError):
            raise item
        try:
            demos.append(
                {"prompt": _check_text(item, prompt_column), "completion": _check_text(item, completion_column)}
            )
        except _RowProblem as problem:
            raise problem.at(table.source, rowno) from None
    return demos


def _split_prompts(prompts: list[str], eval_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic hold-out: the same prompts, fraction and seed give the same split."""
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), not {eval_fraction!r}")
    n_eval = round(len(prompts) * eval_fraction)
    if eval_fraction > 0 and len(prompts) >= 2:
        n_eval = min(max(n_eval, 1), len(prompts) - 1)  # keep both sides non-empty
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    train = [p for i, p in enumerate(prompts) if i not in held]
    held_out = [p for i, p in enumerate(prompts) if i in held]
    return train, held_out


def load_task(name_or_path: str | Path, **kwargs: Any) -> Task:
    """Load a task by builtin name, local file path, or hub dataset id.

    * a name in ``_BUILTIN_TASKS`` imports its ``"module:attribute"`` (a Task, or a
      callable called with ``kwargs`` that returns one);
    * a local folder (a ``save_to_disk`` folder or a folder of data files, as ``str`` or
      ``Path`` alike) goes to ``Task.from_hub(name=<folder name>, dataset_id=path, **kwargs)``;
    * an existing file (or a name ending in ``.jsonl``/``.json``/``.csv``/``.parquet``)
      goes to ``Task.from_files(name=<file stem>, prompts=path, **kwargs)``;
    * anything else to ``Task.from_hub(name=id, dataset_id=id, **kwargs)``.
    """
    key = str(name_or_path)
    if key in _BUILTIN_TASKS:
        return _load_builtin(key, kwargs)
    if Path(key).is_dir():
        return Task.from_hub(Path(key).name, key, **kwargs)
    if isinstance(name_or_path, Path) or _looks_like_file(key):
        return Task.from_files(Path(key).stem, key, **kwargs)
    try:
        return Task.from_hub(key, key, **kwargs)
    except DataValidationError as err:
        if err.reason != "could not load dataset id":
            raise
        known = ", ".join(sorted(_BUILTIN_TASKS)) or "none"
        raise DataValidationError(
            key,
            None,
            None,
            "unknown task",
            detail=f"not a builtin task (known: {known}), not a local file, and the hub "
            f"dataset could not be loaded ({err.detail})",
            expected=err.expected,
        ) from err


def _load_builtin(name: str, kwargs: dict) -> Task:
    target = _BUILTIN_TASKS[name]
    module_name, _, attr = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"builtin task {name!r} points to {target!r}, which could not be imported: {exc}") from exc
    if isinstance(obj, Task):
        if kwargs:
            raise TypeError(f"builtin task {name!r} is a fixed Task and takes no options (got {sorted(kwargs)})")
        return obj
    task = obj(**kwargs)
    if not isinstance(task, Task):
        raise TypeError(f"builtin task {name!r} ({target}) returned {type(task).__name__}, not a Task")
    return task
