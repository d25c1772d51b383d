"""LabelStore on real SQLite files: items, judgments (record / edit / undo / double clicks), resume, export."""

import hashlib
import json
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from rlhfkit.data import DataValidationError, load_preferences
from rlhfkit.labeling import LabelStore, LabelStoreError, SchemaVersionError


def pairs(n, prefix="p"):
    return [
        {"prompt": f"{prefix}{i}", "response_a": f"good answer {i}", "response_b": f"bad answer {i}"} for i in range(n)
    ]


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.db") as s:
        yield s


# -- items ----------------------------------------------------------------------------------------------------


def test_add_pairs_returns_ids_and_dedupes(store, tmp_path):
    ids = store.add_pairs(pairs(3), source="run-1")
    assert ids == [1, 2, 3]
    assert store.item(2) == {
        "id": 2,
        "kind": "pair",
        "prompt": "p1",
        "candidates": ["good answer 1", "bad answer 1"],
        "meta": {},
        "source": "run-1",
    }
    # the same rows again (and a duplicate inside one call) give the stored ids, no new items
    assert store.add_pairs(pairs(3) + pairs(1)) == [1, 2, 3, 1]
    assert store.count("pair") == 3
    # swapped responses are a different item: "a"/"b" name stored positions
    swapped = {"prompt": "p0", "response_a": "bad answer 0", "response_b": "good answer 0"}
    assert store.add_pairs([swapped]) == [4]
    store.close()
    with LabelStore(tmp_path / "labels.db") as again:  # dedupe across reopenings too
        assert again.add_pairs(pairs(2)) == [1, 2]


def test_add_pairs_from_dataframe_keeps_extra_columns_in_meta(store):
    df = pd.DataFrame(pairs(2)).assign(prompt_index=[0, 1], score=[0.5, float("nan")])
    df["meta"] = [{"run": "x"}, None]
    ids = store.add_pairs(df)
    assert store.item(ids[0])["meta"] == {"run": "x", "prompt_index": 0, "score": 0.5}
    assert store.item(ids[1])["meta"] == {"prompt_index": 1, "score": None}


@pytest.mark.parametrize(
    "row, field, reason",
    [
        ({"prompt": "p", "response_a": "x"}, "response_b", "missing column"),
        ({"prompt": "  ", "response_a": "x", "response_b": "y"}, "prompt", "empty text"),
        ({"prompt": "p", "response_a": 3, "response_b": "y"}, "response_a", "wrong type"),
        ({"prompt": "p", "response_a": None, "response_b": "y"}, "response_a", "missing value"),
        ({"prompt": "p", "response_a": "same", "response_b": "same"}, "response_b", "identical responses"),
        ({"prompt": "p", "response_a": "x", "response_b": "y", "meta": "notes"}, "meta", "wrong type"),
        (
            {"prompt": "p", "response_a": "x", "response_b": "y", "meta": {"f": object()}},
            "meta",
            "not JSON serialisable",
        ),
    ],
)
def test_bad_pair_rows_name_row_and_field_and_add_nothing(store, row, field, reason):
    with pytest.raises(DataValidationError) as err:
        store.add_pairs(pairs(2) + [row], source="batch.jsonl")
    assert (err.value.source, err.value.row, err.value.field, err.value.reason) == ("batch.jsonl", 3, field, reason)
    assert str(err.value).startswith(f"batch.jsonl, row 3, field '{field}': {reason}")
    assert store.count("pair") == 0  # all or nothing


def test_bad_rows_of_other_shapes(store):
    with pytest.raises(DataValidationError, match=r"add_pairs, row 1: wrong type: got str"):
        store.add_pairs(["not a dict"])
    with pytest.raises(TypeError, match="single dict"):
        store.add_pairs(pairs(1)[0])
    with pytest.raises(DataValidationError, match=r"row 1, field 'responses': too few responses"):
        store.add_rankings([{"prompt": "p", "responses": ["only one"]}])
    with pytest.raises(DataValidationError, match=r"row 2, field 'responses': duplicate responses"):
        store.add_rankings([{"prompt": "p", "responses": ["x", "y"]}, {"prompt": "q", "responses": ["x", "y", "x"]}])
    with pytest.raises(DataValidationError, match=r"row 1, field 'responses': wrong type"):
        store.add_rankings([{"prompt": "p", "responses": "x y"}])
    with pytest.raises(DataValidationError, match=r"add_prompts, row 2, field 'prompt': empty text"):
        store.add_prompts(["fine", ""])
    with pytest.raises(TypeError, match="single string"):
        store.add_prompts("one prompt")
    assert store.count("ranking") == store.count("demonstration") == 0


def test_text_errors_read_word_for_word_as_before(store):
    # The store checks text with rlhfkit.data's checks; its messages say "row", as they always did.
    cases = [
        ({"response_a": "x", "response_b": "y"}, "field 'prompt': missing column: this row has no 'prompt' key"),
        ({"prompt": None, "response_a": "x", "response_b": "y"}, "field 'prompt': missing value: None"),
        ({"prompt": float("nan"), "response_a": "x", "response_b": "y"}, "field 'prompt': missing value: nan"),
        ({"prompt": 3, "response_a": "x", "response_b": "y"}, "field 'prompt': wrong type: got int"),
        ({"prompt": " ", "response_a": "x", "response_b": "y"}, "field 'prompt': empty text"),
    ]
    for row, message in cases:
        with pytest.raises(DataValidationError) as err:
            store.add_pairs([row])
        assert str(err.value) == f"add_pairs, row 1, {message} (expected a non-empty string)"
    with pytest.raises(DataValidationError) as err:
        store.add_rankings([{"prompt": "p", "responses": ["x", ""]}], source="r.jsonl")
    assert str(err.value) == "r.jsonl, row 1, field 'responses': empty text (expected a non-empty string)"


def test_importing_the_store_loads_no_heavy_library():
    code = (
        "import sys, rlhfkit.labeling.store, rlhfkit.labeling; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'pyarrow', 'datasets', 'numpy', 'torch'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_rankings_and_prompts(store):
    import numpy as np

    ids = store.add_rankings(
        [{"prompt": "r", "responses": np.array(["x", "y", "z"])}, {"prompt": "r", "responses": ["x", "y", "z"]}]
    )
    assert ids == [1, 1] and store.item(1)["candidates"] == ["x", "y", "z"]
    assert store.add_prompts(["write one", {"prompt": "write two", "meta": {"topic": "film"}}]) == [2, 3]
    assert store.item(3) == {
        "id": 3,
        "kind": "demonstration",
        "prompt": "write two",
        "candidates": [],
        "meta": {"topic": "film"},
        "source": "",
    }
    assert [store.count(k) for k in ("pair", "ranking", "demonstration")] == [0, 1, 2]
    with pytest.raises(KeyError, match="no item 99"):
        store.item(99)
    with pytest.raises(ValueError, match="unknown kind"):
        store.count("pairs")


# -- recording ------------------------------------------------------------------------------------------------


def test_record_validates_against_the_item_kind(store):
    (pair,) = store.add_pairs(pairs(1))
    (rank,) = store.add_rankings([{"prompt": "r", "responses": ["x", "y", "z"]}])
    (demo,) = store.add_prompts(["write"])
    bad_calls = [
        (dict(item_id=42, choice="a"), "item 42 does not exist"),
        (dict(item_id=pair, choice="left"), r"item 1, a pair item.*expected choice to be one of .*got 'left'"),
        (dict(item_id=pair), r"item 1.*expected choice to be one of"),
        (dict(item_id=pair, ranking=[0, 1]), r"item 1.*expected choice="),
        (dict(item_id=rank, ranking=[0, 1]), r"item 2, a ranking item with 3 candidates.*permutation"),
        (dict(item_id=rank, ranking=[0, 1, 1]), r"item 2.*permutation"),
        (dict(item_id=rank, choice="a"), r"item 2.*expected ranking="),
        (dict(item_id=demo, text="   "), r"item 3, a demonstration item.*non-empty string"),
        (dict(item_id=demo, choice="skip", text="x"), r"item 3.*a skip carries no ranking or text"),
        (dict(item_id=pair, choice="a", display_order=[0, 0]), r"item 1.*display_order"),
        (dict(item_id=pair, choice="a", seconds=-1), r"item 1.*seconds"),
        (dict(item_id=pair, choice="a", seconds=float("nan")), r"item 1.*seconds"),
        (dict(item_id=pair, choice="a", rationale=5), r"item 1.*rationale"),
    ]
    for kwargs, message in bad_calls:
        item_id = kwargs.pop("item_id")
        with pytest.raises(ValueError, match=message):
            store.record(item_id, "ann", **kwargs)
    with pytest.raises(ValueError, match="annotator must be a non-empty string"):
        store.record(pair, "", choice="a")
    assert len(store.judgments(active_only=False)) == 0
    # a batch with one bad judgment writes none of them
    with pytest.raises(ValueError, match="item 2"):
        store.record_many(
            [dict(item_id=pair, annotator="ann", choice="a"), dict(item_id=rank, annotator="ann", ranking=[5, 0, 1])]
        )
    assert len(store.judgments(active_only=False)) == 0


def test_record_stores_every_field(store):
    (pair,) = store.add_pairs(pairs(1))
    jid = store.record(pair, "ann", choice="b", rationale="clearer", display_order=[1, 0], seconds=2.5, event_id="ev-1")
    j = store.judgment(jid)
    assert {
        k: j[k]
        for k in (
            "item_id",
            "annotator",
            "choice",
            "ranking",
            "text",
            "rationale",
            "display_order",
            "seconds",
            "event_id",
            "status",
            "supersedes",
            "kind",
            "prompt",
        )
    } == {
        "item_id": pair,
        "annotator": "ann",
        "choice": "b",
        "ranking": None,
        "text": None,
        "rationale": "clearer",
        "display_order": [1, 0],
        "seconds": 2.5,
        "event_id": "ev-1",
        "status": "active",
        "supersedes": None,
        "kind": "pair",
        "prompt": "p0",
    }
    assert isinstance(j["created"], float)
    # numpy values (from DataFrames, front-end decoders) are fine
    import numpy as np

    (rank,) = store.add_rankings([{"prompt": "r", "responses": ["x", "y", "z"]}])
    jid = store.record(
        rank,
        "ann",
        ranking=[np.int64(2), np.int64(0), np.int64(1)],
        display_order=np.array([1, 2, 0]),
        seconds=np.float32(1.5),
    )
    assert (store.judgment(jid)["ranking"], store.judgment(jid)["display_order"]) == ([2, 0, 1], [1, 2, 0])
    with pytest.raises(ValueError, match="limit must be >= 0"):
        store.pending("ann", "pair", limit=-1)


def test_a_write_waits_for_another_process_holding_the_lock(store):
    import threading
    import time

    (pair,) = store.add_pairs(pairs(1))
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock for a moment
    releaser = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    releaser.start()
    started = time.monotonic()
    jid = store.record(pair, "ann", choice="a")  # waits instead of failing with "database is locked"
    assert time.monotonic() - started >= 0.4 and store.judgment(jid)["choice"] == "a"
    releaser.join()
    other.close()


def test_double_click_edit_and_undo(store):
    ids = store.add_pairs(pairs(3))
    first = store.record(ids[0], "ann", choice="a", event_id="e1")
    assert store.record(ids[0], "ann", choice="a", event_id="e1") == first  # double click: no second judgment
    assert store.record(ids[0], "ann", choice="b", event_id="e1") == first  # same event id: still the first
    assert len(store.judgments(active_only=False)) == 1
    assert store.record(ids[0], "other", choice="b", event_id="e1") != first  # event ids are per annotator

    edited = store.record(ids[0], "ann", choice="tie", event_id="e2")  # an edit supersedes
    table = store.judgments(annotator="ann", active_only=False).set_index("id")
    assert table.loc[first, "status"] == "superseded" and table.loc[edited, "status"] == "active"
    assert table.loc[edited, "supersedes"] == first and table.loc[first, "changed"] is not None
    assert list(store.judgments(annotator="ann").choice) == ["tie"]

    second = store.record(ids[1], "ann", choice="a")
    assert [h["id"] for h in store.history("ann")] == [second, edited]
    assert [p["id"] for p in store.pending("ann", "pair")] == [ids[2]]

    undone = store.undo("ann")
    assert undone["id"] == second and undone["status"] == "undone"
    assert [p["id"] for p in store.pending("ann", "pair")] == [ids[1], ids[2]]  # the undone item is back
    assert store.undo("ann")["id"] == edited
    assert store.undo("ann") is None  # nothing active left (superseded ones are not resurrected)
    assert len(store.judgments(annotator="ann", active_only=False)) == 3  # nothing is ever deleted
    assert store.undo("nobody") is None


def test_undo_and_history_by_kind(store):
    pair_id = store.add_pairs([{"prompt": "p", "response_a": "x", "response_b": "y"}])[0]
    rank_id = store.add_rankings([{"prompt": "q", "responses": ["r", "s", "t"]}])[0]
    ranked = store.record(rank_id, "ann", ranking=[2, 0, 1])
    chose = store.record(pair_id, "ann", choice="b")
    assert [j["id"] for j in store.history("ann", kind="ranking")] == [ranked]
    assert [j["id"] for j in store.history("ann")] == [chose, ranked]
    assert store.undo("ann", kind="ranking")["id"] == ranked  # the newer pair judgment is left alone
    assert store.judgment(chose)["status"] == "active"
    assert store.undo("ann", kind="ranking") is None
    with pytest.raises(ValueError, match="kind"):
        store.undo("ann", kind="pairs")


def test_pending_progress_and_skips(store):
    ids = store.add_pairs(pairs(30))
    store.add_prompts(["a prompt"])
    assert store.progress("ann", "pair") == {
        "done": 0,
        "total": 30,
        "skipped": 0,
        "labelled": 0,
        "left": 30,
        "per_minute": 0.0,
    }
    window = store.pending("ann", "pair", limit=5)
    assert [w["id"] for w in window] == ids[:5]
    assert all(set(w) == {"id", "kind", "prompt", "candidates", "meta", "source", "display_order"} for w in window)
    assert [w["id"] for w in store.pending("ann", "pair", limit=3, after_id=ids[10])] == ids[11:14]
    for i in ids[:4]:
        store.record(i, "ann", choice="a")
    store.record(ids[4], "ann", choice="skip")  # skips count as judged ...
    assert store.pending("ann", "pair", limit=1)[0]["id"] == ids[5]
    progress = store.progress("ann", "pair")
    assert (progress["done"], progress["total"], progress["skipped"]) == (5, 30, 1)  # ... and are counted
    assert (progress["labelled"], progress["left"]) == (4, 25)  # ... apart from the real decisions
    assert progress["per_minute"] > 0
    assert store.pending("other", "pair", limit=1)[0]["id"] == ids[0]  # per annotator
    assert store.progress("ann", "demonstration")["total"] == 1
    assert store.annotators() == ["ann"]


def test_display_order_is_random_across_items_and_stable(store, tmp_path):
    ids = store.add_pairs(pairs(400))
    orders = [store.display_order(i, "ann") for i in ids]
    assert all(sorted(o) == [0, 1] for o in orders)
    flipped = sum(o == [1, 0] for o in orders) / len(orders)
    assert 0.4 < flipped < 0.6  # about half the items show candidate b on the left
    assert [store.display_order(i, "other") for i in ids] != orders  # seeded per annotator too
    window = store.pending("ann", "pair", limit=50)
    assert [w["display_order"] for w in window] == orders[:50]
    store.close()
    with LabelStore(tmp_path / "labels.db") as again:  # the same after reopening (another process, same hash)
        assert [again.display_order(i, "ann") for i in ids] == orders
        (r,) = again.add_rankings([{"prompt": "r", "responses": list("abcd")}])
        seen = {tuple(again.display_order(r, f"ann{k}")) for k in range(60)}
        assert len(seen) > 10 and all(sorted(o) == [0, 1, 2, 3] for o in seen)
        assert again.display_order(again.add_prompts(["p"])[0], "ann") == []
        with pytest.raises(KeyError):
            again.display_order(999, "ann")


def test_reopen_resumes_where_the_annotator_stopped(tmp_path):
    path = tmp_path / "labels.db"
    with LabelStore(path) as s:
        ids = s.add_pairs(pairs(10))
        for i in ids[:6]:
            s.record(i, "ann", choice="a", display_order=s.display_order(i, "ann"))
        s.undo("ann")
        s.record(ids[0], "bob", choice="b")
    with LabelStore(path) as s:
        assert s.pending("ann", "pair", limit=1)[0]["id"] == ids[5]
        assert s.progress("ann", "pair")["done"] == 5
        assert [h["item_id"] for h in s.history("ann", limit=2)] == [ids[4], ids[3]]
        assert s.pending("bob", "pair", limit=1)[0]["id"] == ids[1]


# -- export ---------------------------------------------------------------------------------------------------


def labelled_store(store):
    """3 pairs decided a/b/a (+ a tie, a both-bad, a skip), a ranking of 3, a skipped ranking, demonstrations."""
    ids = store.add_pairs(pairs(6))
    store.record(ids[0], "ann", choice="a", display_order=[0, 1], rationale="r0", seconds=1.0)
    store.record(ids[1], "ann", choice="b", display_order=[0, 1])
    store.record(ids[2], "ann", choice="a", display_order=[1, 0])
    store.record(ids[3], "ann", choice="tie", display_order=[0, 1])
    store.record(ids[4], "ann", choice="both_bad")
    store.record(ids[5], "ann", choice="skip")
    store.record(ids[0], "bob", choice="b")  # no display order recorded
    r1, r2 = store.add_rankings(
        [{"prompt": "rank me", "responses": ["x", "y", "z"]}, {"prompt": "and me", "responses": ["u", "v"]}]
    )
    store.record(r1, "ann", ranking=[2, 0, 1])  # z > x > y
    store.record(r2, "ann", choice="skip")
    d1, d2, d3 = store.add_prompts(["write a review", "write a haiku", "write a limerick"])
    store.record(d1, "ann", text="Loved it.", seconds=12.0)
    store.record(d2, "ann", text="first try")
    store.record(d2, "ann", text="Rain on the roof.")  # edited: only the newest counts
    store.record(d3, "ann", choice="skip")
    return ids


def test_to_preferences_counts_and_expands(store):
    labelled_store(store)
    rows, counts = store.to_preferences()
    assert counts == {
        "pairs": 7,
        "judgments": 9,
        "pair_judgments": 6,
        "rankings": 1,
        "ties": 1,
        "both_bad": 1,
        "skipped": 2,
        "annotators": ["ann", "bob"],
        "criterion": "overall",
    }
    assert {r["criterion"] for r in rows} == {"overall"}
    pair_rows = [r for r in rows if r["source_kind"] == "pair"]
    assert [(r["prompt"], r["chosen"], r["rejected"], r["annotator"], r["chosen_position"]) for r in pair_rows] == [
        ("p0", "good answer 0", "bad answer 0", "ann", "left"),
        ("p1", "bad answer 1", "good answer 1", "ann", "right"),
        ("p2", "good answer 2", "bad answer 2", "ann", "right"),  # a shown on the right and chosen
        ("p0", "bad answer 0", "good answer 0", "bob", None),
    ]
    assert pair_rows[0]["rationale"] == "r0" and pair_rows[0]["seconds"] == 1.0
    ranked = [
        (r["chosen"], r["rejected"], r["rank_chosen"], r["rank_rejected"])
        for r in rows
        if r["source_kind"] == "ranking"
    ]
    assert sorted(ranked) == sorted([("z", "x", 1, 2), ("z", "y", 1, 3), ("x", "y", 2, 3)])  # K(K-1)/2 = 3
    only_bob, counts = store.to_preferences(annotators=["bob"], kinds=["pair"])
    assert len(only_bob) == 1 and counts["annotators"] == ["bob"]
    with pytest.raises(ValueError, match=r"no judgments by \['carol'\].*annotators here: \['ann', 'bob'\]"):
        store.to_preferences(annotators=["carol"])
    with pytest.raises(ValueError, match="demonstrations"):
        store.to_preferences(kinds=["demonstration"])


def test_rankings_expand_to_all_pairs(store):
    (r,) = store.add_rankings([{"prompt": "p", "responses": [f"resp {i}" for i in range(5)]}])
    store.record(r, "ann", ranking=[3, 1, 4, 0, 2])
    rows, counts = store.to_preferences()
    assert counts["pairs"] == len(rows) == 10  # 5 * 4 / 2
    rank = {f"resp {pos}": i for i, pos in enumerate([3, 1, 4, 0, 2])}
    assert all(rank[row["chosen"]] < rank[row["rejected"]] for row in rows)
    assert len({(row["chosen"], row["rejected"]) for row in rows}) == 10


def test_export_dataset_jsonl_parquet_read_back(store, tmp_path):
    labelled_store(store)
    expected, _ = store.to_preferences()
    ds = store.export()
    assert ds.column_names[:3] == ["prompt", "chosen", "rejected"]
    assert {"annotator", "chosen_position", "created", "rationale", "item_id", "judgment_id"} <= set(ds.column_names)
    assert ds.to_list() == expected

    jsonl = store.export(tmp_path / "out" / "prefs.jsonl")
    assert jsonl == tmp_path / "out" / "prefs.jsonl"
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == expected
    parquet = store.export(str(tmp_path / "prefs.parquet"), annotators=["ann"])
    back = pd.read_parquet(parquet)
    assert list(back.columns[:3]) == ["prompt", "chosen", "rejected"] and len(back) == 6
    assert list(back.chosen_position.fillna("-")) == ["left", "right", "right", "-", "-", "-"]
    assert not list(tmp_path.glob("**/*.tmp"))
    # what the store exports loads as validated TRL preference data, extras kept
    loaded = load_preferences(jsonl)
    assert len(loaded.dataset) == 7 and "annotator" in loaded.dataset.column_names
    with pytest.raises(ValueError, match="expected 'dataset' or a path ending in .jsonl or .parquet"):
        store.export(tmp_path / "prefs.csv")


def test_export_of_an_empty_store_has_the_columns(store):
    ds = store.export()
    assert len(ds) == 0 and ds.column_names[:3] == ["prompt", "chosen", "rejected"]


def test_demonstrations(store):
    labelled_store(store)
    demos = store.demonstrations()
    assert [(d["prompt"], d["completion"]) for d in demos] == [
        ("write a review", "Loved it."),
        ("write a haiku", "Rain on the roof."),
    ]
    assert demos[0]["annotator"] == "ann" and demos[0]["seconds"] == 12.0
    assert store.demonstrations("bob") == []


# -- the file -------------------------------------------------------------------------------------------------


def test_file_settings_schema_and_integrity(store):
    assert store.integrity_check() == "ok"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with sqlite3.connect(store.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
        assert {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {
            "meta",
            "items",
            "candidates",
            "judgments",
        }


def test_newer_schema_version_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "labels.db"
    with LabelStore(path) as s:
        s.add_pairs(pairs(2))
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    raw.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(SchemaVersionError, match=r"schema version 3.*reads versions up to 2.*upgrade rlhfkit"):
        LabelStore(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_files_that_are_not_label_stores(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("this is not a database, just text that is long enough to fill a header page " * 20)
    with pytest.raises(LabelStoreError, match="not a label store"):
        LabelStore(text)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE users (id INTEGER)")
    raw.close()
    with pytest.raises(LabelStoreError, match=r"not a label store \(tables: \['users'\]\)"):
        LabelStore(other)
    with pytest.raises(LabelStoreError, match="is a folder"):
        LabelStore(tmp_path)


def test_store_creates_its_folder_and_closes(tmp_path):
    s = LabelStore(tmp_path / "deep" / "er" / "labels.db")
    s.add_prompts(["p"])
    s.close()
    s.close()  # idempotent
    assert (tmp_path / "deep" / "er" / "labels.db").exists()
    assert "labels.db" in repr(s)
