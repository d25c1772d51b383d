"""Judgments per criterion in the label store, and the migration of files written before criteria existed.

tests/data/label_store_v1.db was written by rlhfkit 0.1.0's label store at schema version 1 (three pairs, a
ranking and a demonstration; active, superseded, undone and skipped judgments by three annotators), and
tests/data/label_store_v1.json holds what that release read back from it: every judgment and the TRL export.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from rlhfkit.labeling import LabelStore, agreement, agreement_by_criterion, annotate_with_judge, position_bias
from rlhfkit.labeling import store as store_module

DATA = Path(__file__).parent / "data"
V1_FILE, V1_EXPECTED = DATA / "label_store_v1.db", DATA / "label_store_v1.json"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def v1_copy(tmp_path) -> Path:
    target = tmp_path / "labels.db"
    shutil.copyfile(V1_FILE, target)
    return target


def _schema_version(path: Path) -> str:
    with sqlite3.connect(path) as raw:
        return raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]


def test_a_version_1_file_opens_migrated_and_keeps_every_judgment(v1_copy):
    committed = _sha(V1_FILE)
    expected = json.loads(V1_EXPECTED.read_text())
    assert _schema_version(v1_copy) == "1"
    with LabelStore(v1_copy) as store:
        assert store.integrity_check() == "ok"
        every = [{k: v for k, v in j.items() if k not in ("created", "changed")} for j in store._judgment_rows("1", ())]
        assert every == [{**j, "criterion": "overall"} for j in expected["judgments"]]
        assert [j["status"] for j in every].count("superseded") == 1 and [j["status"] for j in every].count(
            "undone"
        ) == 1
        rows, counts = store.to_preferences()
        assert [{k: v for k, v in r.items() if k != "created"} for r in rows] == [
            {**r, "criterion": "overall"} for r in expected["preferences"]
        ]
        assert counts == {**expected["counts"], "criterion": "overall"}
        assert store.criteria() == ["overall"]
        # The rules hold as before: a re-sent event is a no-op, and one active judgment per item and annotator.
        first = every[0]
        assert store.record(first["item_id"], "alice", choice="b", event_id="e1") == first["id"]
        assert store.pending("carol", "pair", limit=10)[0]["id"] == 1  # carol's judgment on item 1 was undone
        # Old items take judgments on new criteria.
        new_id = store.record(first["item_id"], "alice", choice="b", criterion="harmless")
        assert store.judgment(new_id)["criterion"] == "harmless"
        assert store.judgment(first["id"])["status"] == "active"  # another criterion supersedes nothing
    assert _schema_version(v1_copy) == "2"
    with sqlite3.connect(v1_copy) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'migrated_from_1'").fetchone()[0].startswith("rlhfkit")
    with LabelStore(v1_copy) as again:  # opening a migrated file again changes nothing
        assert len(again._judgment_rows("1", ())) == len(every) + 1
    assert _sha(V1_FILE) == committed  # the committed file itself is never opened for writing


def test_a_migration_that_fails_leaves_the_version_1_file_as_it_was(v1_copy, monkeypatch):
    broken = store_module._MIGRATIONS[1] + "\nINSERT INTO no_such_table VALUES (1);\n"
    monkeypatch.setitem(store_module._MIGRATIONS, 1, broken)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        LabelStore(v1_copy)
    assert _schema_version(v1_copy) == "1"
    with sqlite3.connect(v1_copy) as raw:
        columns = [r[1] for r in raw.execute("PRAGMA table_info(judgments)")]
        assert "criterion" not in columns and raw.execute("SELECT COUNT(*) FROM judgments").fetchone()[0] == 9
    monkeypatch.undo()
    with LabelStore(v1_copy) as store:  # and the real migration still works afterwards
        assert len(store._judgment_rows("1", ())) == 9


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.db") as s:
        yield s


CRITERIA = ("helpful", "harmless", "overall")


def _submission(item_id, annotator, choices, event="ev1"):
    return [
        {"item_id": item_id, "annotator": annotator, "criterion": c, "choice": x, "event_id": event, "seconds": 2.0}
        for c, x in zip(CRITERIA, choices)
    ]


def test_one_submission_per_pair_records_every_criterion_and_undo_takes_it_back_whole(store):
    a, b = store.add_pairs(
        [
            {"prompt": "p0", "response_a": "kind and long", "response_b": "curt"},
            {"prompt": "p1", "response_a": "x", "response_b": "y"},
        ]
    )
    assert [it["id"] for it in store.pending("ann", "pair", criteria=CRITERIA)] == [a, b]
    ids = store.record_many(_submission(a, "ann", ["a", "b", "a"]))
    assert len(ids) == 3
    assert [it["id"] for it in store.pending("ann", "pair", criteria=CRITERIA)] == [b]
    # Half-judged on the criteria asked still counts as pending; "overall" alone is done.
    store.record(b, "ann", choice="a", criterion="helpful")
    assert [it["id"] for it in store.pending("ann", "pair", criteria=CRITERIA)] == [b]
    assert [it["id"] for it in store.pending("ann", "pair")] == [b]
    assert store.criteria() == ["overall", "harmless", "helpful"]
    assert store.progress("ann", "pair", criterion="helpful")["done"] == 2
    assert store.progress("ann", "pair")["done"] == 1
    # A repeated submission (double click) writes nothing, per criterion.
    assert store.record_many(_submission(a, "ann", ["a", "b", "a"])) == ids
    # Per-criterion export: the same pair, opposite winners.
    helpful, _ = store.to_preferences(criterion="helpful")
    harmless, counts = store.to_preferences(criterion="harmless")
    assert [(r["chosen"], r["criterion"]) for r in helpful] == [("kind and long", "helpful"), ("x", "helpful")]
    assert [(r["chosen"], r["criterion"]) for r in harmless] == [("curt", "harmless")]
    assert counts["criterion"] == "harmless" and counts["pair_judgments"] == 1
    assert set(store.judgments(criterion="harmless").criterion) == {"harmless"}
    # Undo: the single "helpful" judgment on b is the latest submission; then the three on a go together.
    first = store.undo("ann", kind="pair")
    assert first["item_id"] == b and first["criteria"] == ["helpful"]
    second = store.undo("ann", kind="pair")
    assert second["item_id"] == a and second["criteria"] == list(CRITERIA)
    statuses = store.judgments(active_only=False).set_index("id").status
    assert all(statuses[i] == "undone" for i in ids)
    assert [it["id"] for it in store.pending("ann", "pair", criteria=CRITERIA)] == [a, b]
    assert store.undo("ann", kind="pair") is None


def test_an_edit_supersedes_only_its_own_criterion(store):
    (a,) = store.add_pairs([{"prompt": "p", "response_a": "x", "response_b": "y"}])
    first = store.record_many(_submission(a, "ann", ["a", "a", "a"]))
    edit = store.record(a, "ann", choice="b", criterion="harmless")
    rows = store.judgments(active_only=False).set_index("id")
    assert rows.status[first[1]] == "superseded" and rows.supersedes[edit] == first[1]
    assert rows.status[first[0]] == rows.status[first[2]] == "active"
    assert store.to_preferences(criterion="harmless")[0][0]["chosen"] == "y"


def test_criterion_names_and_kinds_are_checked(store):
    (a,) = store.add_pairs([{"prompt": "p", "response_a": "x", "response_b": "y"}])
    (d,) = store.add_prompts(["write"])
    for bad in ("", " helpful", None, 3):
        with pytest.raises(ValueError, match="criterion is a non-empty name"):
            store.record(a, "ann", choice="a", criterion=bad)
    with pytest.raises(ValueError, match="a demonstration answers no criterion"):
        store.record(d, "ann", text="hello", criterion="helpful")
    with pytest.raises(ValueError, match="distinct criteria"):
        store.pending("ann", "pair", criteria=["helpful", "helpful"])
    with pytest.raises(ValueError, match="distinct criteria"):
        store.pending("ann", "pair", criteria=[])
    assert store.judgments().empty  # nothing was written by the refused calls


def _length_judge(prompts, responses):
    return [float(len(r)) for r in responses]


def _brevity_judge(prompts, responses):
    return [-float(len(r)) for r in responses]


def test_judges_label_one_criterion_each_and_agreement_is_per_criterion(store):
    store.add_pairs(
        [{"prompt": f"p{i}", "response_a": "word " * (i + 1), "response_b": "w" * (2 * i + 3)} for i in range(12)]
    )
    assert annotate_with_judge(store, _length_judge, "long", criterion="detail", progress=False) == 12
    assert annotate_with_judge(store, _brevity_judge, "short", criterion="detail", progress=False) == 12
    assert annotate_with_judge(store, _length_judge, "long", criterion="brief", progress=False) == 12
    assert annotate_with_judge(store, _length_judge, "short", criterion="brief", progress=False) == 12
    # A rerun finds nothing pending on that criterion.
    assert annotate_with_judge(store, _length_judge, "long", criterion="brief", progress=False) == 0
    assert store.pending("long", "pair") != []  # "overall" was never asked
    table = agreement_by_criterion(store)
    by = {row.criterion: row for row in table[table.annotator_a == "long"].itertuples()}
    assert by["detail"].observed == 0.0 and by["brief"].observed == 1.0  # opposite judges vs the same judge
    assert table.attrs["left_out"] == []  # "overall" has no judgments, so it is not in criteria() at all
    assert agreement(store, criterion="brief").attrs["criterion"] == "brief"
    with pytest.raises(ValueError, match="on 'overall'"):
        agreement(store)
    assert position_bias(store, "long", criterion="detail")["n"] == 12
    assert position_bias(store, "long")["n"] == 0


def test_simulated_annotators_label_each_criterion_by_its_own_gold_judge(tmp_path):
    """The headless path of multi-criteria labels: one simulated annotator per criterion of the task, exported per
    criterion; on the reviews task the two criteria disagree on a share of the pairs."""
    from rlhfkit.judges import SimulatedAnnotator
    from rlhfkit.labeling import annotate_with_judge
    from rlhfkit.tiny import reviews_task

    task = reviews_task(n_train_prompts=4, n_eval_prompts=2, n_demonstrations=40)
    demos = task.demonstrations
    rows = [
        {"prompt": demos[i]["prompt"], "response_a": demos[i]["completion"], "response_b": demos[i + 1]["completion"]}
        for i in range(0, 40, 2)
    ]
    with LabelStore(tmp_path / "labels.sqlite") as store:
        store.add_pairs(rows)
        for criterion in ("positive", "brief"):
            judge = SimulatedAnnotator(task.gold_for(criterion), noise="none")
            assert annotate_with_judge(store, judge, "sim", criterion=criterion, progress=False) == 20
        assert store.criteria() == ["brief", "positive"]
        chosen = {
            c: {r["item_id"]: r["chosen"] for r in store.to_preferences(criterion=c)[0]} for c in ("positive", "brief")
        }
    for criterion in ("positive", "brief"):
        gold = task.gold_for(criterion)
        for row in rows:
            a, b = gold([row["prompt"]] * 2, [row["response_a"], row["response_b"]])
            if a == b:
                continue
            item = next(i for i, r in enumerate(rows, start=1) if r is row)
            assert chosen[criterion].get(item) == (row["response_a"] if a > b else row["response_b"])
    disagree = sum(chosen["positive"].get(i) != chosen["brief"].get(i) for i in chosen["positive"])
    assert 0 < disagree < len(chosen["positive"])
