"""The labeling widgets' Python side: anywidget classes that show items from a `LabelStore` and record decisions.

The front end (ES modules + CSS, no build step) lives in the checkout's ``widgets/`` folder and ships inside the
wheel as ``rlhfkit/_widgets``. Every front-end action arrives as one custom message and goes through
`handle_message`, which tests call directly without a browser. Message formats (front end -> Python)::

    {"type": "choose", "event_id", "item_id", "side": "left"|"right"|"tie"|"both_bad"|"skip", "rationale", "seconds",
     "criteria": {name: "left"|"right"|"tie"}}  (criteria: only from a PairwiseLabeler asking several)
    {"type": "rank", "event_id", "item_id", "order": [display indices, best first], "seconds"}
    {"type": "submit_text", "event_id", "item_id", "text", "seconds"}
    {"type": "undo", "event_id"}
    {"type": "edit", "event_id", "judgment_id", ...the fields of choose / rank / submit_text}

State goes back as synced traits: ``items`` (the current item first, then at most ``window - 1`` upcoming ones,
never the whole set), ``progress`` (`LabelStore.progress`: decisions, skips and what is left, counted apart),
``history`` (recent decisions, for editing; a pair or ranking entry carries ``chosen``, the text that won, as the
exported rows' "chosen" column holds it, or None for a tie, both bad or a skip), ``ack`` (the last event id
handled: the front end's pending-ack guard waits for it), ``error`` and ``notice``.

The browser only ever sees display positions. "left" means ``display_order[0]``: the stored candidate shown on the
left, which the store shuffles per (item, annotator); the order shown is recorded with every judgment, so position
bias can be measured later.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from rlhfkit.labeling.store import OVERALL, LabelStore, _check_annotator, _check_criteria

__all__ = ["PairwiseLabeler", "RankingLabeler", "DemonstrationWriter"]

log = logging.getLogger(__name__)

_SIDES = ("left", "right", "tie", "both_bad", "skip")
_CRITERION_SIDES = ("left", "right", "tie")  # a criterion's answer: A, B or tie (the overall choice has them all)
_HISTORY = 8  # recent decisions offered for editing
_SEEN_EVENTS = 1000  # event ids remembered to answer a re-sent message without touching the store


def _asset(name: str) -> str:
    """A front-end file: from the installed package (wheel, or the editable checkout through the rlhfkit/_widgets
    link), else from the checkout's widgets/ folder (a checkout where the link did not survive, e.g. Windows)."""
    try:
        resource = importlib.resources.files("rlhfkit").joinpath("_widgets", name)
        if resource.is_file():
            return resource.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, OSError):
        pass
    checkout = Path(__file__).resolve().parents[2] / "widgets" / name
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"rlhfkit's widget front end {name!r} is missing: looked in the installed package "
        f"(rlhfkit/_widgets) and in {checkout.parent}; reinstall rlhfkit"
    )


def _module(name: str) -> str:
    # anywidget loads one ES module from a string, so the shared helpers are prepended instead of imported.
    return _asset("common.js") + "\n" + _asset(name)


class _Labeler(anywidget.AnyWidget):
    """Shared machinery: the window of pending items, the message loop, undo, edit, progress and history."""

    kind = ""  # "pair", "ranking" or "demonstration"
    _css = _asset("labeling.css")

    annotator = traitlets.Unicode("").tag(sync=True)
    items = traitlets.List().tag(sync=True)
    progress = traitlets.Dict().tag(sync=True)
    history = traitlets.List().tag(sync=True)
    ack = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)
    markdown = traitlets.Bool(False).tag(sync=True)

    # This kind's keyword options besides markdown and window: name -> default. Each sets the synced trait of
    # that name (PairwiseLabeler's rationale).
    _options: dict[str, Any] = {}
    # Whether close() closes the store; False until __init__ opens one (a widget whose __init__ raised is still
    # closed by its __del__).
    _owns_store = False

    def __init__(
        self,
        store: LabelStore | str | os.PathLike,
        annotator: str,
        *,
        markdown: bool = False,
        window: int = 20,
        **options: Any,
    ):
        unknown = sorted(set(options) - set(self._options))
        if unknown:
            known = ", ".join(["markdown", "window", *self._options])
            raise TypeError(f"{type(self).__name__}: unknown options {unknown} (its options: {known})")
        _check_annotator(annotator)
        if int(window) < 1:
            raise ValueError(f"window must be at least 1 (the current item), got {window!r}")
        self._owns_store = not isinstance(store, LabelStore)
        self.store = LabelStore(store) if self._owns_store else store
        self.window = int(window)
        self._window: list[dict] = []  # the store's items (with display_order) behind `items`
        self._seen: OrderedDict[str, dict] = OrderedDict()  # event id -> result, for re-sent messages
        self._item_cache: OrderedDict[int, dict] = OrderedDict()  # items shown in the history list
        self.last_seconds = 0.0  # Python-side time of the last message (the "feels instant" budget is 50 ms)
        traits = {name: _coerced(default, options.get(name, default)) for name, default in self._options.items()}
        super().__init__(annotator=annotator, markdown=bool(markdown), **traits)
        self._window = self.store.pending(annotator, self.kind, limit=self.window, criteria=self._asked())
        self._publish()
        self.on_msg(self._on_custom_message)

    # -- the message loop -------------------------------------------------------------------------------------

    def _on_custom_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict):
            self.handle_message(content)

    def handle_message(self, msg: dict) -> dict:
        """Handle one front-end action (see the module docstring) and publish the new state.

        Returns ``{"ok": True, "judgment_id": ...}`` (undo: the undone judgment's id, or None when there was
        nothing to undo) or ``{"ok": False, "error": "..."}``; errors also go to the ``error`` trait, so a bad
        message never leaves the front end waiting. A repeated event id returns the first answer and records
        nothing.
        """
        start = time.perf_counter()
        event_id = msg.get("event_id")
        event_id = None if event_id in (None, "") else str(event_id)
        if event_id is not None and event_id in self._seen:
            result = self._seen[event_id]
        else:
            notice = ""
            try:
                kind = msg.get("type")
                if kind == "undo":
                    result, notice = self._undo()
                elif kind == "edit":
                    result = self._edit(msg, event_id)
                    notice = f"Changed your decision on item #{result['item_id']}."
                elif kind in self._actions:
                    result = self._decide(msg, event_id)
                else:
                    raise ValueError(
                        f"unknown message type {kind!r}; expected one of {sorted(self._actions + ('undo', 'edit'))}"
                    )
                error = ""
            except Exception as exc:  # shown in the widget; the front end must get its ack either way
                if not isinstance(exc, (ValueError, KeyError, TypeError)):
                    log.exception("labeling widget: %s failed", msg.get("type"))
                error = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
                result = {"ok": False, "error": error}
            if event_id is not None:
                self._seen[event_id] = result
                while len(self._seen) > _SEEN_EVENTS:
                    self._seen.popitem(last=False)
            try:
                self._publish(error=error, notice=notice, ack=event_id)
            except Exception as exc:  # the store became unreadable: still release the front end's guard
                log.exception("labeling widget: could not read the label store")
                with self.hold_sync():
                    self.error = f"could not read the label store: {exc}"
                    if event_id is not None:
                        self.ack = event_id
        if event_id is not None:
            self.ack = event_id  # a re-sent event: acknowledged again, nothing else changes
        self.last_seconds = time.perf_counter() - start
        return result

    # -- actions ----------------------------------------------------------------------------------------------

    _actions: tuple[str, ...] = ()

    def _asked(self) -> list[str]:
        """The criteria every item is judged on (an item is pending until all have an answer): "overall", and
        before it a PairwiseLabeler's own `criteria`."""
        return [OVERALL]

    def _decide(self, msg: dict, event_id: str | None) -> dict:
        """choose / rank / submit_text on an item: record it, then move the window on."""
        item = self._item(msg.get("item_id"))
        judgment_id = self._record(msg, item, event_id)
        self._advance_past(item["id"])
        return {"ok": True, "judgment_id": judgment_id, "item_id": item["id"]}

    def _edit(self, msg: dict, event_id: str | None) -> dict:
        """A new decision on an already judged item; it supersedes the old one, shown in the same display order."""
        try:
            old = self.store.judgment(int(msg.get("judgment_id")))
        except (TypeError, ValueError):
            raise ValueError(f"edit: judgment_id must be an integer, got {msg.get('judgment_id')!r}") from None
        if old["annotator"] != self.annotator or old["kind"] != self.kind:
            raise ValueError(
                f"edit: judgment {old['id']} is a {old['kind']} judgment by {old['annotator']!r}, "
                f"not one of this widget's ({self.kind} by {self.annotator!r})"
            )
        item = self.store.item(old["item_id"])
        # Decode with the order the person saw when making the decision being edited.
        item["display_order"] = old["display_order"] or self.store.display_order(item["id"], self.annotator)
        judgment_id = self._record(msg, item, event_id)
        self._window = [it for it in self._window if it["id"] != item["id"]]  # an edited item is judged
        return {"ok": True, "judgment_id": judgment_id, "item_id": item["id"], "supersedes": old["id"]}

    def _undo(self) -> tuple[dict, str]:
        # Only this widget's kind: a decision made meanwhile in another widget (say a ranking, by the same
        # annotator) is left alone.
        undone = self.store.undo(self.annotator, kind=self.kind)
        if undone is None:
            return {"ok": True, "judgment_id": None}, "Nothing to undo."
        # "Back": the undone item is shown next, whatever its place in the id order.
        item = self.store.item(undone["item_id"])
        item["display_order"] = self.store.display_order(item["id"], self.annotator)
        self._window = [item] + [it for it in self._window if it["id"] != item["id"]][: self.window - 1]
        return (
            {"ok": True, "judgment_id": undone["id"], "item_id": item["id"]},
            f"Undid your decision on item #{item['id']}.",
        )

    def _record(self, msg: dict, item: dict, event_id: str | None) -> int:
        """Store the message's decision on `item` with the display order it was shown in; returns the id of the
        overall judgment. Several criteria are one transaction (they are written, and undone, together)."""
        shared = {
            "item_id": item["id"],
            "annotator": self.annotator,
            "display_order": item["display_order"] or None,
            "seconds": _seconds(msg),
            "event_id": event_id,
        }
        per_criterion = self._criterion_fields(msg, item)
        overall = {**shared, **self._judgment_fields(msg, item), "criterion": OVERALL}
        ids = self.store.record_many([*({**shared, **f} for f in per_criterion), overall])
        return ids[-1]

    def _criterion_fields(self, msg: dict, item: dict) -> list[dict]:
        """record() fields of the judgments on criteria other than "overall" (none but in a PairwiseLabeler)."""
        return []

    def _judgment_fields(self, msg: dict, item: dict) -> dict:
        """The store's record() fields for this kind; a skip ("side": "skip") is accepted by every widget."""
        if msg.get("side") == "skip":
            return {"choice": "skip"}
        return self._fields(msg, item)

    def _fields(self, msg: dict, item: dict) -> dict:  # overridden per kind
        raise NotImplementedError

    # -- the window of items ----------------------------------------------------------------------------------

    def _item(self, item_id: Any) -> dict:
        try:
            item_id = int(item_id)
        except (TypeError, ValueError):
            raise ValueError(f"item_id must be an integer, got {item_id!r}") from None
        for it in self._window:
            if it["id"] == item_id:
                return it
        item = self.store.item(item_id)  # not in the window (e.g. judged from another view): still valid
        if item["kind"] != self.kind:
            raise ValueError(f"item {item_id} is a {item['kind']} item; this widget labels {self.kind} items")
        item["display_order"] = self.store.display_order(item_id, self.annotator)
        return item

    def _advance_past(self, item_id: int) -> None:
        """Drop the judged item and top the window up with the next pending ones (never more than `window`)."""
        last = max([it["id"] for it in self._window] + [item_id])
        self._window = [it for it in self._window if it["id"] != item_id]
        need = self.window - len(self._window)
        asked = self._asked()
        if need > 0:
            self._window += self.store.pending(self.annotator, self.kind, limit=need, after_id=last, criteria=asked)
        if not self._window:  # nothing after: look again from the start (an item undone elsewhere, say)
            self._window = self.store.pending(self.annotator, self.kind, limit=self.window, criteria=asked)

    # -- state for the browser --------------------------------------------------------------------------------

    def _publish(self, *, error: str = "", notice: str = "", ack: str | None = None) -> None:
        # One sync message: the front end must see the new window together with the ack that releases its guard
        # (it shows the next item early while waiting, so a window without the ack would skip one).
        # One entry per decision: its overall judgment (the criteria answered with it are looked up per entry).
        history = self.store.history(self.annotator, limit=_HISTORY, kind=self.kind, criterion=OVERALL)
        with self.hold_sync():
            self.items = [self._item_view(it) for it in self._window[: self.window]]
            self.progress = self.store.progress(self.annotator, self.kind)
            self.history = [self._history_view(j) for j in history]
            self.error = error
            self.notice = notice
            if ack is not None:
                self.ack = ack

    def _item_view(self, item: dict) -> dict:
        order = item["display_order"] or []
        return {"item_id": item["id"], "prompt": item["prompt"], "responses": [item["candidates"][p] for p in order]}

    def _shown_order(self, judgment: dict) -> list[int]:
        """The display order of a judgment (older or AI-made judgments may have none: the annotator's order)."""
        return judgment["display_order"] or self.store.display_order(judgment["item_id"], self.annotator)

    def _history_view(self, judgment: dict) -> dict:
        item = self._cached_item(judgment["item_id"])
        order = self._shown_order(judgment)
        return {
            "judgment_id": judgment["id"],
            "item_id": item["id"],
            "prompt": item["prompt"],
            "responses": [item["candidates"][p] for p in order],
            "rationale": judgment["rationale"],
            "skipped": judgment["choice"] == "skip",
            "created": judgment["created"],
        }

    def _cached_item(self, item_id: int) -> dict:
        if item_id not in self._item_cache:
            self._item_cache[item_id] = self.store.item(item_id)
            while len(self._item_cache) > 4 * _HISTORY:
                self._item_cache.popitem(last=False)
        return self._item_cache[item_id]

    # -- lifecycle --------------------------------------------------------------------------------------------

    @property
    def current(self) -> dict | None:
        """The item the person sees now (the store's dict, with its display_order), or None when all are done."""
        return self._window[0] if self._window else None

    def close(self) -> None:
        """Close the widget (and the store, if the widget opened it from a path)."""
        super().close()
        if self._owns_store:
            self.store.close()


class PairwiseLabeler(_Labeler):
    """Compare two responses to a prompt: A better / B better / tie / both bad / skip, with an optional rationale.

    ``PairwiseLabeler(store_or_path, "alice")`` shows the annotator's first pending pair item. Which stored
    response shows on the left is shuffled per item and annotator and recorded with the judgment. Keys: 1 / 2 /
    3 / 4, left / right arrows, s (skip), z or Backspace (undo), r (rationale box); clicking works too.
    ``rationale=False`` hides the rationale box.

    ``criteria=["helpful", "harmless"]`` asks each of them first (A / B / tie: keys 1 / 2 / 3, arrow up / down to
    move between them, each row shows its keys), then the overall choice, which records one judgment per
    criterion and the overall one together; undo takes the whole decision back. A skip skips every criterion.
    """

    kind = "pair"
    _esm = _module("pairwise.js")
    _actions = ("choose",)
    _options = {"rationale": True, "criteria": []}
    rationale = traitlets.Bool(True).tag(sync=True)
    criteria = traitlets.List(traitlets.Unicode()).tag(sync=True)

    @traitlets.validate("criteria")
    def _valid_criteria(self, proposal):
        names = list(proposal["value"])
        if not names:
            return names
        names = _check_criteria(names, "PairwiseLabeler criteria")
        if OVERALL in names:
            raise traitlets.TraitError(
                f"PairwiseLabeler criteria: {OVERALL!r} is always asked last; list only the other criteria"
            )
        return names

    def _asked(self) -> list[str]:
        return [*self.criteria, OVERALL]

    def _criterion_fields(self, msg: dict, item: dict) -> list[dict]:
        if not self.criteria:
            if msg.get("criteria"):
                raise ValueError("this widget asks no criteria; got answers for " + ", ".join(msg["criteria"]))
            return []
        if msg.get("side") == "skip":  # skipping the item skips every question about it
            return [{"criterion": c, "choice": "skip"} for c in self.criteria]
        answers = msg.get("criteria")
        answers = answers if isinstance(answers, dict) else {}
        missing = [c for c in self.criteria if c not in answers]
        if missing:
            raise ValueError(f"answer every criterion before the overall choice: missing {', '.join(missing)}")
        unknown = sorted(set(answers) - set(self.criteria))
        if unknown:
            raise ValueError(f"unknown criteria {unknown}; this widget asks {self.criteria}")
        fields = []
        for name in self.criteria:
            side = answers[name]
            if side not in _CRITERION_SIDES:
                raise ValueError(f"criterion {name!r}: expected one of {_CRITERION_SIDES}, got {side!r}")
            choice = "ab"[item["display_order"][0 if side == "left" else 1]] if side != "tie" else "tie"
            fields.append({"criterion": name, "choice": choice})
        return fields

    def _fields(self, msg: dict, item: dict) -> dict:
        side = msg.get("side")
        if side not in _SIDES:
            raise ValueError(f"side must be one of {_SIDES}, got {side!r}")
        rationale = msg.get("rationale")
        rationale = rationale.strip() or None if isinstance(rationale, str) else None
        if side in ("left", "right"):
            position = item["display_order"][0 if side == "left" else 1]
            return {"choice": "ab"[position], "rationale": rationale}
        return {"choice": side, "rationale": rationale}

    def _history_view(self, judgment: dict) -> dict:
        view = super()._history_view(judgment)
        choice, order = judgment["choice"], self._shown_order(judgment)
        view["side"] = ("left" if order[0] == "ab".index(choice) else "right") if choice in ("a", "b") else choice
        # The side is what the person pressed; exports name candidates: the winner's text links the two.
        item = self._cached_item(judgment["item_id"])
        view["chosen"] = item["candidates"]["ab".index(choice)] if choice in ("a", "b") else None
        if self.criteria:  # the answers given with this decision, as the person saw them (for an edit)
            answers = self.store.choices(judgment["item_id"], self.annotator)
            view["criteria"] = {
                name: ("left" if order[0] == "ab".index(c) else "right") if c in ("a", "b") else c
                for name, c in answers.items()
                if name in self.criteria
            }
        return view


class RankingLabeler(_Labeler):
    """Order K responses to a prompt, best first, by keys (the numbers in order of preference) or drag and drop.

    Stored as a ranking of candidate positions; `LabelStore.to_preferences` expands it to K(K-1)/2 pairs.
    """

    kind = "ranking"
    _esm = _module("ranking.js")
    _actions = ("rank", "choose")  # "choose" only for {"side": "skip"}

    def _fields(self, msg: dict, item: dict) -> dict:
        order, shown = msg.get("order"), item["display_order"]
        if not (
            isinstance(order, list) and sorted(order) == list(range(len(shown))) and all(type(i) is int for i in order)
        ):
            raise ValueError(
                f"order must list the {len(shown)} display positions 0..{len(shown) - 1} once each, "
                f"best first; got {order!r}"
            )
        return {"ranking": [shown[i] for i in order]}

    def _history_view(self, judgment: dict) -> dict:
        view = super()._history_view(judgment)
        shown = self._shown_order(judgment)
        view["order"] = [shown.index(p) for p in judgment["ranking"]] if judgment["ranking"] else []
        item = self._cached_item(judgment["item_id"])
        view["chosen"] = item["candidates"][judgment["ranking"][0]] if judgment["ranking"] else None  # the best
        return view


class DemonstrationWriter(_Labeler):
    """Show a prompt; the person writes the response (SFT data). Ctrl+Enter or the button submits."""

    kind = "demonstration"
    _esm = _module("demonstration.js")
    _actions = ("submit_text", "choose")  # "choose" only for {"side": "skip"}

    def _fields(self, msg: dict, item: dict) -> dict:
        text = msg.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("write a response first: the text is empty")
        return {"text": text}

    def _item_view(self, item: dict) -> dict:
        return {"item_id": item["id"], "prompt": item["prompt"]}

    def _history_view(self, judgment: dict) -> dict:
        view = super()._history_view(judgment)
        view["text"] = judgment["text"] or ""
        return view


def _coerced(default: Any, value: Any) -> Any:
    """An option's value as the type of its default (the traits are synced as that type); one string given for a
    list option is a list of one (criteria="helpful" asks one criterion, not one per letter)."""
    if isinstance(default, list) and isinstance(value, str):
        return [value]
    return type(default)(value)


def _seconds(msg: dict) -> float | None:
    """Time on the item as the front end measured it; anything unusable is dropped rather than refused."""
    value = msg.get("seconds")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e7:
        return float(value)
    return None
