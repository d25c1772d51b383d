"""Reading records into rows: local ``.jsonl``/``.json``/``.csv``/``.parquet`` files, lists of dicts, pandas
DataFrames, ``datasets.Dataset``s, local dataset folders and hub dataset ids.

`read_records` and `write_jsonl` are public. The loaders (preferences, rankings, tasks) read through `_table_from`,
which produces a `_Table`: the records in file order, each tagged with its row number, where an unreadable record
is replaced by the `DataValidationError` describing it. That lets strict loaders raise at the first bad row and
lenient ones skip it.

Row numbers are 1-based. For JSONL files the row number is the line number (blank lines are skipped but still
counted, so ``row 7`` is the 7th line of the file). For CSV files it is the record number, not counting the header.
For JSON files and in-memory data it is the position of the record in the list.

pandas, pyarrow and datasets are imported only when used (a DataFrame or a Dataset can only be passed in once its
library is loaded), so importing this module costs only the standard library.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from rlhfkit.data.errors import DataValidationError

if TYPE_CHECKING:  # pragma: no cover - typing only; datasets is imported lazily
    import datasets

__all__ = ["read_records", "write_jsonl"]


MEMORY = "<memory>"


FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


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
    pd = sys.modules.get("pandas")  # pandas' missing values can only exist if pandas was imported
    if pd is not None and (value is pd.NA or value is pd.NaT):
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
    pd = sys.modules.get("pandas")  # a DataFrame can only exist if pandas was imported
    if pd is not None and isinstance(source, pd.DataFrame):
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
