"""Errors and value checks for rlhfkit's data: every problem names its source, row and field.

- `DataValidationError`: a data problem, located as precisely as possible, e.g.
  ``prefs.jsonl, row 7, field 'chosen': empty text (expected a non-empty string)``.
- `SkippedRow`: a row that a lenient loader (``strict=False``) left out, and why.
- The checks applied to one value (text, message lists, margins, missing values). They raise `_RowProblem`, which
  knows the field and the reason but not the location; the caller, which knows the source and the row, turns it
  into a `DataValidationError` with ``problem.at(source, row)``.

This module imports only the standard library, so light modules (the label store) use it without loading pandas,
pyarrow or datasets.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = ["DataValidationError", "SkippedRow"]


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
# Value checks shared by preferences, rankings, tasks and the label store
# ---------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _check_text(record: dict, name: str, *, what: str = "record") -> str:
    """Return record[name] if it is a non-empty string, else raise _RowProblem. ``what`` names a record in the
    message ("this record has no 'prompt' key"; the label store says "row")."""
    if name not in record:
        raise _RowProblem(
            name, "missing column", detail=f"this {what} has no {name!r} key", expected="a non-empty string"
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


# ---------------------------------------------------------------------------
# Reporting what a lenient loader skipped
# ---------------------------------------------------------------------------


def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in counts.items())


def _report_skips(source: str, total: int, skipped: list[SkippedRow]) -> None:
    # Nothing is dropped silently: say how many rows went and why.
    if skipped:
        counts = Counter(s.reason for s in skipped).most_common()
        warnings.warn(
            f"{source}: skipped {len(skipped)} of {total} rows "
            f"({_format_counts(dict(counts))}); see .skipped for row numbers",
            stacklevel=3,
        )
