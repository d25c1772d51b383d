"""Preference pairs in TRL's format: `load_preferences` -> `PreferenceData`.

`load_preferences` reads any source `rlhfkit.data.tables` reads, validates every row and normalises it to
``{"prompt", "chosen", "rejected"}`` (strings, or message lists for the conversational format), optional ``margin``,
extra columns kept. Besides rows that already have a prompt, it recognises three layouts and converts them:
HH-RLHF full transcripts (the prompt is the shared text through the last shared ``"Assistant:"``), message-list
pairs (the prompt is the shared leading messages), and a string prompt with message-list responses
(ultrafeedback_binarized's layout).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhfkit.data.errors import (
    DataValidationError,
    SkippedRow,
    _check_margin,
    _check_messages,
    _format_counts,
    _is_missing,
    _report_skips,
    _RowProblem,
    _text_value,
)
from rlhfkit.data.tables import _dataset_from_rows, _rename_columns, _require_columns, _table_from, write_jsonl

if TYPE_CHECKING:  # pragma: no cover - typing only; datasets and pandas are imported lazily
    import datasets
    import pandas as pd

__all__ = ["PreferenceData", "load_preferences"]


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
