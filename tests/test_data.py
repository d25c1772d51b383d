"""Tests for rlhfkit.data: loaders, importers, validation, rankings and tasks."""

from __future__ import annotations

import json
import subprocess
import sys

import datasets
import pandas as pd
import pytest

import rlhfkit.tasks
from rlhfkit.tasks import load_task
from rlhfkit import data
from rlhfkit.data import (
    DataValidationError,
    PreferenceData,
    Task,
    load_preferences,
    ranking_to_pairs,
    rankings_to_preferences,
    read_records,
    write_jsonl,
)
from rlhfkit.judges import FunctionJudge, VaderJudge
from rlhfkit.tasks import builtin_tasks, register_task

ROWS = [
    {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away.", "margin": 1.5, "id": "a"},
    {"prompt": "Count to 2", "chosen": "1, 2", "rejected": "2, 1", "margin": 0.5, "id": "b"},
]


def _write_jsonl_lines(path, lines: list[str | bytes]) -> None:
    path.write_bytes(b"\n".join(l if isinstance(l, bytes) else l.encode() for l in lines) + b"\n")


def _assert_located(err: DataValidationError, filename: str, row: int | None, field: str | None):
    msg = str(err)
    assert filename in msg
    assert err.row == row
    assert err.field == field
    if row is not None:
        assert f"row {row}" in msg
    if field is not None:
        assert f"field '{field}'" in msg
    assert "expected" in msg


# ---------------------------------------------------------------------------
# Loader formats round-trip
# ---------------------------------------------------------------------------


def _check_rows(pd_: PreferenceData):
    assert len(pd_) == 2
    assert pd_.format == "standard"
    assert pd_.converted_from is None
    assert pd_.skipped == []
    assert pd_.dataset.column_names == ["prompt", "chosen", "rejected", "margin", "id"]
    got = pd_.dataset.to_list()
    for want, row in zip(ROWS, got):
        assert row["prompt"] == want["prompt"]
        assert row["chosen"] == want["chosen"]
        assert row["rejected"] == want["rejected"]
        assert row["margin"] == pytest.approx(want["margin"])
        assert row["id"] == want["id"]


def test_jsonl_roundtrip(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", ROWS)
    loaded = load_preferences(path)
    _check_rows(loaded)
    assert loaded.source == str(path)
    out = loaded.to_jsonl(tmp_path / "again.jsonl")
    _check_rows(load_preferences(str(out)))


def test_json_list_and_data_key(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "b.json").write_text(json.dumps({"data": ROWS}))
    _check_rows(load_preferences(tmp_path / "a.json"))
    _check_rows(load_preferences(tmp_path / "b.json"))


def test_csv_roundtrip(tmp_path):
    path = tmp_path / "prefs.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    _check_rows(load_preferences(path))


def test_parquet_roundtrip(tmp_path):
    path = tmp_path / "prefs.parquet"
    pd.DataFrame(ROWS).to_parquet(path)
    _check_rows(load_preferences(path))


def test_memory_sources():
    _check_rows(load_preferences(ROWS))
    _check_rows(load_preferences(pd.DataFrame(ROWS)))
    _check_rows(load_preferences(datasets.Dataset.from_list(ROWS)))
    assert load_preferences(ROWS).source == "<memory>"


def test_column_renames_and_pandas():
    rows = [{"q": "Hi?", "good": "Hello.", "bad": "No.", "lang": "en"}]
    loaded = load_preferences(rows, prompt_column="q", chosen_column="good", rejected_column="bad")
    assert loaded.dataset.column_names == ["prompt", "chosen", "rejected", "lang"]
    df = loaded.to_pandas()
    assert df.loc[0, "chosen"] == "Hello." and df.loc[0, "lang"] == "en"


def test_conversational_rows_kept_as_is():
    rows = [
        {
            "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Bye."}],
        }
    ]
    loaded = load_preferences(rows)
    assert loaded.format == "conversational"
    assert loaded.dataset[0]["chosen"] == [{"role": "assistant", "content": "Hello!"}]


def test_read_records_and_summary(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", ROWS)
    assert read_records(path) == ROWS
    assert "kept 2" in load_preferences(path).summary()


# ---------------------------------------------------------------------------
# Importers
# ---------------------------------------------------------------------------


def test_hh_transcript_import():
    shared = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant:"
    rows = [{"chosen": shared + " 6.", "rejected": shared + " 7, I think.", "src": "hh"}]
    loaded = load_preferences(rows)
    assert loaded.converted_from == "transcript"
    assert loaded.format == "standard"
    row = loaded.dataset[0]
    assert row["prompt"] == shared
    assert row["chosen"] == "6."
    assert row["rejected"] == "7, I think."
    assert row["src"] == "hh"


def test_hh_transcript_without_shared_assistant_marker(tmp_path):
    path = write_jsonl(
        tmp_path / "hh.jsonl",
        [
            {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: yo"},
            {"chosen": "Human: hi", "rejected": "Human: hey"},
        ],
    )
    with pytest.raises(DataValidationError) as info:
        load_preferences(path)
    _assert_located(info.value, "hh.jsonl", 2, "chosen")
    assert "Assistant:" in str(info.value)


def test_message_list_import():
    user = {"role": "user", "content": "Name a color."}
    rows = [
        {
            "chosen": [user, {"role": "assistant", "content": "Blue."}],
            "rejected": [user, {"role": "assistant", "content": "Seven."}],
        }
    ]
    loaded = load_preferences(rows)
    assert loaded.converted_from == "messages"
    assert loaded.format == "conversational"
    row = loaded.dataset[0]
    assert row["prompt"] == [user]
    assert row["chosen"] == [{"role": "assistant", "content": "Blue."}]
    assert row["rejected"] == [{"role": "assistant", "content": "Seven."}]


def test_message_list_import_rejects_multi_turn_tail():
    user = {"role": "user", "content": "Hi"}
    rows = [
        {
            "chosen": [user, {"role": "assistant", "content": "A"}, {"role": "user", "content": "B"}],
            "rejected": [user, {"role": "assistant", "content": "C"}],
        }
    ]
    with pytest.raises(DataValidationError) as info:
        load_preferences(rows)
    _assert_located(info.value, "<memory>", 1, "chosen")


# ---------------------------------------------------------------------------
# Malformed input: every case names file, row and field
# ---------------------------------------------------------------------------

GOOD = {"prompt": "p", "chosen": "c", "rejected": "r"}


@pytest.mark.parametrize(
    "bad, field, reason",
    [
        ({"prompt": "p", "chosen": "c"}, "rejected", "missing column"),
        ({"prompt": "p", "chosen": None, "rejected": "r"}, "chosen", "missing value"),
        ({"prompt": "p", "chosen": 3, "rejected": "r"}, "chosen", "wrong type"),
        ({"prompt": "p", "chosen": {"text": "x"}, "rejected": "r"}, "chosen", "wrong type"),
        ({"prompt": "p", "chosen": "   ", "rejected": "r"}, "chosen", "empty text"),
        ({"prompt": "", "chosen": "c", "rejected": "r"}, "prompt", "empty text"),
        ({"prompt": "p", "chosen": "same", "rejected": "same"}, "rejected", "chosen identical to rejected"),
        ({**GOOD, "margin": "NaN"}, "margin", "margin not finite"),
        ({**GOOD, "margin": "Infinity"}, "margin", "margin not finite"),
    ],
)
def test_bad_row_in_jsonl(tmp_path, bad, field, reason):
    path = tmp_path / "prefs.jsonl"
    good = {**GOOD, "margin": 1.0} if "margin" in bad else GOOD
    lines = [json.dumps(good), json.dumps(good), json.dumps(bad)]
    # Non-finite numbers are written as bare JSON literals, as Python's json does.
    lines[2] = lines[2].replace('"NaN"', "NaN").replace('"Infinity"', "Infinity")
    _write_jsonl_lines(path, lines)
    with pytest.raises(DataValidationError) as info:
        load_preferences(path)
    _assert_located(info.value, "prefs.jsonl", 3, field)
    assert info.value.reason == reason


def test_bad_message_list_wrong_type():
    rows = [
        {
            "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": [{"role": "assistant", "content": 5}],
            "rejected": [{"role": "assistant", "content": "x"}],
        }
    ]
    with pytest.raises(DataValidationError) as info:
        load_preferences(rows)
    _assert_located(info.value, "<memory>", 1, "chosen")
    assert info.value.reason == "wrong type"


def test_invalid_utf8_in_jsonl_names_row_and_field(tmp_path):
    path = tmp_path / "prefs.jsonl"
    bad = b'{"prompt": "p", "chosen": "caf\xe9", "rejected": "r"}'
    _write_jsonl_lines(path, [json.dumps(GOOD), bad])
    with pytest.raises(DataValidationError) as info:
        load_preferences(path)
    _assert_located(info.value, "prefs.jsonl", 2, "chosen")
    assert info.value.reason == "invalid UTF-8"
    with pytest.raises(DataValidationError):
        read_records(path)


def test_invalid_utf8_in_csv_names_row_and_field(tmp_path):
    path = tmp_path / "prefs.csv"
    path.write_bytes(b"prompt,chosen,rejected\np,c,r\np,c,r\np,c,bad \xff byte\n")
    with pytest.raises(DataValidationError) as info:
        load_preferences(path)
    _assert_located(info.value, "prefs.csv", 3, "rejected")
    assert info.value.reason == "invalid UTF-8"


def test_bad_json_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    _write_jsonl_lines(path, [json.dumps(GOOD), '{"prompt": "p", "chosen": '])
    with pytest.raises(DataValidationError) as info:
        load_preferences(path)
    err = info.value
    assert "prefs.jsonl" in str(err) and "row 2" in str(err)
    assert err.row == 2 and err.reason == "invalid JSON"
    assert "invalid JSON:" in str(err)


def test_jsonl_row_is_line_number(tmp_path):
    path = tmp_path / "prefs.jsonl"
    _write_jsonl_lines(path, [json.dumps(GOOD), "", json.dumps({**GOOD, "chosen": ""})])
    with pytest.raises(DataValidationError) as info:
        load_preferences(path)
    assert info.value.row == 3


def test_missing_column_in_whole_file_raises_even_when_lenient(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "p", "chosen": "c"}] * 3)
    with pytest.raises(DataValidationError) as info:
        load_preferences(path, strict=False)
    assert info.value.row is None and info.value.field == "rejected"
    assert "prefs.jsonl" in str(info.value) and "missing column" in str(info.value)


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataValidationError, match="empty.jsonl.*no records"):
        load_preferences(path)


def test_error_message_format():
    err = DataValidationError("prefs.jsonl", 7, "chosen", "empty text", expected="a non-empty string")
    assert str(err) == "prefs.jsonl, row 7, field 'chosen': empty text (expected a non-empty string)"
    assert isinstance(err, ValueError)


# ---------------------------------------------------------------------------
# strict=False: keep the good rows, report and warn
# ---------------------------------------------------------------------------


def test_lenient_keeps_good_rows_and_warns(tmp_path):
    path = tmp_path / "prefs.jsonl"
    _write_jsonl_lines(
        path,
        [
            json.dumps(GOOD),
            json.dumps({**GOOD, "chosen": ""}),
            "{not json",
            json.dumps({**GOOD, "rejected": "c"}),
            json.dumps({**GOOD, "chosen": "  "}),
            b'{"prompt": "p", "chosen": "\xff", "rejected": "r"}',
            json.dumps({**GOOD, "prompt": "q2"}),
        ],
    )
    with pytest.warns(UserWarning, match=r"skipped 5 of 7 rows.*empty text: 2"):
        loaded = load_preferences(path, strict=False)
    assert len(loaded) == 2
    assert loaded.dataset["prompt"] == ["p", "q2"]
    assert loaded.skip_counts() == {
        "empty text": 2,
        "invalid JSON": 1,
        "chosen identical to rejected": 1,
        "invalid UTF-8": 1,
    }
    assert [s.row for s in loaded.skipped] == [2, 3, 4, 5, 6]
    assert "skipped 5" in loaded.summary()


def test_lenient_with_all_rows_bad_raises():
    with pytest.warns(UserWarning), pytest.raises(DataValidationError, match="no valid rows"):
        load_preferences([{**GOOD, "chosen": None}], strict=False)


# ---------------------------------------------------------------------------
# Rankings
# ---------------------------------------------------------------------------


def _check_better_chosen(result):
    for row in result.rows:
        assert row["rank_chosen"] < row["rank_rejected"]


def test_ranking_distinct():
    res = ranking_to_pairs("p", ["a", "b", "c", "d"], [2, 1, 4, 3])
    assert (res.n_pairs, res.n_ties) == (6, 0)
    _check_better_chosen(res)
    by_pair = {(r["chosen"], r["rejected"]) for r in res.rows}
    assert ("b", "a") in by_pair and ("d", "c") in by_pair and ("a", "b") not in by_pair


def test_ranking_one_tie():
    res = ranking_to_pairs("p", ["a", "b", "c", "d"], [1, 2, 2, 3], extra={"annotator": 9})
    assert (res.n_pairs, res.n_ties) == (5, 1)
    _check_better_chosen(res)
    assert all(r["annotator"] == 9 for r in res.rows)


def test_ranking_all_tied():
    res = ranking_to_pairs("p", ["a", "b", "c"], [1, 1, 1])
    assert (res.n_pairs, res.n_ties, res.rows) == (0, 3, [])


def test_ranking_tie_policy_error_and_validation():
    with pytest.raises(DataValidationError, match="ranks"):
        ranking_to_pairs("p", ["a", "b"], [1, 1], tie_policy="error")
    with pytest.raises(DataValidationError, match="length mismatch"):
        ranking_to_pairs("p", ["a", "b"], [1])
    with pytest.raises(DataValidationError, match="too few"):
        ranking_to_pairs("p", ["a"], [1])
    with pytest.raises(DataValidationError, match="ranks"):
        ranking_to_pairs("p", ["a", "b"], [0, 1])
    with pytest.raises(DataValidationError, match="ranks"):
        ranking_to_pairs("p", ["a", "b"], [1.5, 1])


def test_rankings_to_preferences():
    records = [
        {"prompt": "p1", "responses": ["a", "b", "c"], "ranks": [1, 2, 3], "batch": 1},
        {"prompt": "p2", "responses": ["x", "y", "z"], "ranks": [1, 1, 2], "batch": 2},
    ]
    prefs = rankings_to_preferences(records)
    assert len(prefs) == 3 + 2
    assert prefs.n_ties == 1
    assert prefs.converted_from == "ranking"
    assert prefs.dataset.column_names == ["prompt", "chosen", "rejected", "rank_chosen", "rank_rejected", "batch"]
    assert "1 tied" in prefs.summary()


# ---------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------


def test_task_rejects_overlap_and_bad_prompts():
    with pytest.raises(ValueError, match="1 prompt.*both.*'b'"):
        Task("t", ["a", "b"], ["b", "c"], [])
    with pytest.raises(ValueError, match="non-empty"):
        Task("t", ["a", " "], [], [])
    with pytest.raises(ValueError, match="completion"):
        Task("t", ["a"], [], [{"prompt": "a", "completion": ""}])


def test_task_sft_dataset():
    task = Task("t", ["a"], ["b"], [{"prompt": "a", "completion": "A"}])
    conv = task.sft_dataset()
    assert conv[0] == {
        "prompt": [{"role": "user", "content": "a"}],
        "completion": [{"role": "assistant", "content": "A"}],
    }
    assert task.sft_dataset(conversational=False)[0] == {"prompt": "a", "completion": "A"}
    assert "1 train prompts" in task.summary()


def test_task_from_files_split_is_deterministic_and_disjoint(tmp_path):
    prompts = [{"prompt": f"prompt {i}"} for i in range(50)] + [{"prompt": "prompt 3"}]
    write_jsonl(tmp_path / "prompts.jsonl", prompts)
    pd.DataFrame([{"prompt": "prompt 1", "completion": "done"}]).to_csv(tmp_path / "demos.csv", index=False)
    kwargs = dict(eval_fraction=0.2, seed=3)
    t1 = Task.from_files("t", tmp_path / "prompts.jsonl", tmp_path / "demos.csv", **kwargs)
    t2 = Task.from_files("t", tmp_path / "prompts.jsonl", tmp_path / "demos.csv", **kwargs)
    assert (t1.train_prompts, t1.eval_prompts) == (t2.train_prompts, t2.eval_prompts)
    assert len(t1.eval_prompts) == 10 and len(t1.train_prompts) == 40
    assert not set(t1.train_prompts) & set(t1.eval_prompts)
    assert set(t1.train_prompts) | set(t1.eval_prompts) == {f"prompt {i}" for i in range(50)}
    assert t1.demonstrations == [{"prompt": "prompt 1", "completion": "done"}]
    t3 = Task.from_files("t", tmp_path / "prompts.jsonl", **{**kwargs, "seed": 4})
    assert t3.eval_prompts != t1.eval_prompts


def test_task_from_files_errors_name_file_row_field(tmp_path):
    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "a"}, {"prompt": 4}])
    with pytest.raises(DataValidationError) as info:
        Task.from_files("t", tmp_path / "prompts.jsonl")
    _assert_located(info.value, "prompts.jsonl", 2, "prompt")


def test_load_task_local_file(tmp_path):
    path = write_jsonl(tmp_path / "mytask.jsonl", [{"text": f"q{i}"} for i in range(10)])
    task = load_task(str(path), prompt_column="text", eval_prompts=["held out"])
    assert task.name == "mytask"
    assert len(task.train_prompts) == 10 and task.eval_prompts == ["held out"]


def test_load_task_unknown_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataValidationError) as info:
        load_task("no-such-org/no-such-dataset-xyz")
    msg = str(info.value)
    assert "no-such-org/no-such-dataset-xyz" in msg
    assert "not a builtin task" in msg and "local" in msg


def test_load_preferences_unknown_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataValidationError, match="could not load dataset id.*offline"):
        load_preferences("no-such-org/no-such-dataset-xyz")


def test_missing_local_file_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_preferences(str(tmp_path / "typo.jsonl"))


def test_data_load_task_is_the_registrys_under_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="rlhfkit.data.load_task moved to rlhfkit.tasks.load_task"):
        assert data.load_task is load_task is rlhfkit.tasks.load_task


def test_load_task_returns_a_task_object_unchanged():
    task = Task("t", ["a", "b"], ["c"], [])
    assert load_task(task) is task
    with pytest.raises(TypeError, match="takes no options"):
        load_task(task, eval_fraction=0.5)


def test_load_task_gold_judge_for_a_prompts_file_and_a_task(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"q{i}"} for i in range(10)])
    judge = FunctionJudge(lambda prompt, response: float(len(response)))
    task = load_task(path, gold_judge=judge)
    assert task.gold_judge is judge and task.gold_judge(["q"], ["abc"]) == [3.0]
    batched = lambda prompts, responses: [1.0] * len(responses)  # noqa: E731 - any batched callable will do
    wrapped = load_task(str(path), gold_judge=batched).gold_judge  # a plain function is a batched judge, wrapped once
    assert isinstance(wrapped, FunctionJudge) and wrapped.fn is batched and wrapped.batched
    assert wrapped(["p", "p"], ["a", "b"]) == [1.0, 1.0]
    assert isinstance(load_task(path, gold_judge="vader").gold_judge, VaderJudge)
    with_judge = load_task(task, gold_judge=batched)  # a copy with the judge; the task given stays as it was
    assert with_judge.gold_judge.fn is batched and task.gold_judge is judge
    assert with_judge.train_prompts == task.train_prompts
    with pytest.raises(TypeError, match="gold_judge is int"):
        load_task(path, gold_judge=3)
    with pytest.raises(TypeError, match="gold_judge is str"):
        Task("t", ["a"], [], [], gold_judge="vader")  # Task itself takes only callables


def test_registered_task_names(monkeypatch):
    monkeypatch.setattr(rlhfkit.tasks, "_REGISTRY", dict(rlhfkit.tasks._REGISTRY))
    fixed = Task("fixed", ["a"], ["b"], [])
    register_task("fixed", fixed)
    register_task("sized", lambda n=2: Task("sized", [f"p{i}" for i in range(n)], [], []))
    assert builtin_tasks() == ["fixed", "reviews", "sized"]
    assert load_task("fixed") is fixed
    assert len(load_task("sized", n=5).train_prompts) == 5
    judge = FunctionJudge(len)
    assert load_task("fixed", gold_judge=judge).gold_judge is judge and fixed.gold_judge is None
    with pytest.raises(TypeError, match="fixed Task and takes no options"):
        load_task("fixed", n=1)
    with pytest.raises(ValueError, match="already registered"):
        register_task("fixed", fixed)
    register_task("fixed", lambda: "not a task", replace=True)
    with pytest.raises(TypeError, match="'fixed': its factory returned str, not a Task"):
        load_task("fixed")
    with pytest.raises(TypeError, match="expected a Task or a callable"):
        register_task("bad", 42)


def test_unknown_task_name_lists_the_registered_names(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(rlhfkit.tasks, "_REGISTRY", dict(rlhfkit.tasks._REGISTRY))
    register_task("my_task", lambda: Task("my_task", ["a"], [], []))
    with pytest.raises(DataValidationError, match=r"unknown task.*not a builtin task \(known: my_task, reviews\)"):
        load_task("no-such-task")


def test_importing_data_imports_no_higher_floor_and_no_heavy_library():
    # rlhfkit.data sits on the lowest floor: it must not import the task registry or rlhfkit.tiny (which imports
    # rlhfkit.data), and it loads pandas, pyarrow and datasets only when used.
    code = (
        "import sys, rlhfkit.data, rlhfkit.tasks; from rlhfkit.data import load_task; "
        "print(sorted(m for m in sys.modules if m.startswith('rlhfkit.tiny') or m.split('.')[0] in "
        "('pandas', 'pyarrow', 'datasets', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import sys, rlhfkit.data; print(sorted(m for m in sys.modules if m.startswith('rlhfkit.') ))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert all(name.startswith("rlhfkit.data") for name in eval(out)), out


def test_load_task_reviews_by_name():
    task = load_task("reviews", n_train_prompts=8, n_eval_prompts=4, n_demonstrations=6)
    assert task.name == "reviews" and len(task.train_prompts) == 8 and len(task.demonstrations) == 6
    assert isinstance(task.gold_judge, VaderJudge)


def test_file_of_only_broken_json_lines_reports_the_first_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    _write_jsonl_lines(path, ['{"prompt": "p", "chosen": ', "not json at all", "{'single': 'quotes'}"])
    with pytest.raises(DataValidationError) as info:
        load_preferences(path)
    assert info.value.row == 1 and info.value.reason == "invalid JSON"
    assert "prefs.jsonl, row 1: invalid JSON" in str(info.value)
    with pytest.raises(DataValidationError) as info, pytest.warns(UserWarning, match="skipped 3 of 3"):
        load_preferences(path, strict=False)  # lenient: every row skipped, counted by reason
    assert info.value.reason == "no valid rows" and "invalid JSON: 3" in str(info.value)
    with pytest.raises(DataValidationError, match="row 1: invalid JSON"):
        Task.from_files("t", path)


def _folder_sources(tmp_path):
    """The same two pairs as a folder of data files and as save_to_disk folders (Dataset and DatasetDict)."""
    files = tmp_path / "files"
    write_jsonl(files / "train.jsonl", ROWS)
    dataset = datasets.Dataset.from_list(ROWS)
    dataset.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict(train=dataset).save_to_disk(str(tmp_path / "saved_dict"))
    return [files, tmp_path / "saved", tmp_path / "saved_dict"]


def test_folder_loads_the_same_given_as_path_or_str(tmp_path):
    for folder in _folder_sources(tmp_path):
        from_path, from_str = load_preferences(folder), load_preferences(str(folder))
        _check_rows(from_path)
        assert from_path.dataset.to_list() == from_str.dataset.to_list()
        assert from_path.source == from_str.source == str(folder)


def test_load_task_from_a_folder_given_as_path_or_str(tmp_path):
    rows = [{"prompt": f"q{i}"} for i in range(10)]
    write_jsonl(tmp_path / "files" / "train.jsonl", rows)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    for folder in (tmp_path / "files", tmp_path / "saved"):
        by_path, by_str = load_task(folder), load_task(str(folder))
        assert by_path.train_prompts == by_str.train_prompts and len(by_path.train_prompts) == 9


def test_saved_dataset_dict_without_the_split_names_the_splits(tmp_path):
    folder = tmp_path / "saved_dict"
    datasets.DatasetDict(test=datasets.Dataset.from_list(ROWS)).save_to_disk(str(folder))
    with pytest.raises(DataValidationError, match="no split 'train'.*'test'"):
        load_preferences(folder)
    assert len(load_preferences(folder, split="test")) == 2


def test_missing_folder_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_preferences(tmp_path / "no-such-folder")


# ---------------------------------------------------------------------------
# A string prompt with message-list responses (UltraFeedback's layout)
# ---------------------------------------------------------------------------


def _ultrafeedback_row(prompt: str, good: str, bad: str, i: int) -> dict:
    """A row shaped like HuggingFaceH4/ultrafeedback_binarized: the lists repeat the user turn."""
    user = {"role": "user", "content": prompt}
    chosen = [user, {"role": "assistant", "content": good}]
    return {
        "prompt": prompt,
        "prompt_id": f"{i:064x}",
        "chosen": chosen,
        "rejected": [user, {"role": "assistant", "content": bad}],
        "messages": chosen,
        "score_chosen": 8.5 - i,
        "score_rejected": 3.0,
    }


UF_ROWS = [
    _ultrafeedback_row("Name a color.", "Blue.", "Seven.", 0),
    _ultrafeedback_row("Say hi.", "Hi there!", "No.", 1),
]


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_ultrafeedback_layout_imports_as_conversational_with_scores_kept(tmp_path, suffix):
    path = tmp_path / f"uf.{suffix}"
    if suffix == "jsonl":
        write_jsonl(path, UF_ROWS)
    else:
        pd.DataFrame(UF_ROWS).to_parquet(path)
    loaded = load_preferences(path)
    assert loaded.format == "conversational" and loaded.skipped == []
    assert loaded.dataset.column_names == [
        "prompt",
        "chosen",
        "rejected",
        "prompt_id",
        "messages",
        "score_chosen",
        "score_rejected",
    ]
    row = loaded.dataset[1]
    assert row["prompt"] == [{"role": "user", "content": "Say hi."}]
    assert row["chosen"] == [{"role": "assistant", "content": "Hi there!"}]
    assert row["rejected"] == [{"role": "assistant", "content": "No."}]
    assert (row["score_chosen"], row["score_rejected"]) == (7.5, 3.0)
    assert row["prompt_id"] == UF_ROWS[1]["prompt_id"] and row["messages"] == UF_ROWS[1]["messages"]
    assert "conversational" in loaded.summary() and "kept 2" in loaded.summary()


def test_string_prompt_with_assistant_only_message_lists():
    rows = [
        {
            "prompt": "Name a color.",
            "chosen": [{"role": "assistant", "content": "Blue."}],
            "rejected": [{"role": "assistant", "content": "Seven."}],
        }
    ]
    row = load_preferences(rows).dataset[0]
    assert row["prompt"] == [{"role": "user", "content": "Name a color."}]
    assert row["chosen"] == [{"role": "assistant", "content": "Blue."}]
    assert row["rejected"] == [{"role": "assistant", "content": "Seven."}]


def test_string_prompt_with_a_system_turn_keeps_it_in_the_prompt():
    system = {"role": "system", "content": "Be brief."}
    user = {"role": "user", "content": "Name a color."}
    rows = [
        {
            "prompt": "Name a color.",
            "chosen": [system, user, {"role": "assistant", "content": "Blue."}],
            "rejected": [system, user, {"role": "assistant", "content": "Seven."}],
        }
    ]
    assert load_preferences(rows).dataset[0]["prompt"] == [system, user]


def _uf_variant(field, value):
    row = _ultrafeedback_row("Say hi.", "Hi there!", "No.", 1)
    row[field] = value
    return row


@pytest.mark.parametrize(
    "bad, field, reason",
    [
        (
            _uf_variant("chosen", [{"role": "user", "content": "Say bye."}, {"role": "assistant", "content": "Bye!"}]),
            "chosen",
            "prompt mismatch",
        ),
        (
            _uf_variant(
                "rejected",
                [
                    {"role": "system", "content": "Be rude."},
                    {"role": "user", "content": "Say hi."},
                    {"role": "assistant", "content": "No."},
                ],
            ),
            "rejected",
            "prompt mismatch",
        ),
        (_uf_variant("chosen", [{"role": "user", "content": "Say hi."}]), "chosen", "no assistant reply"),
        (_uf_variant("rejected", "No."), "rejected", "wrong type"),
        (
            _uf_variant("rejected", _ultrafeedback_row("Say hi.", "Hi there!", "x", 1)["chosen"]),
            "rejected",
            "chosen identical to rejected",
        ),
    ],
)
def test_string_prompt_with_inconsistent_message_lists_names_file_row_and_field(tmp_path, bad, field, reason):
    path = write_jsonl(tmp_path / "uf.jsonl", [UF_ROWS[0], bad])
    with pytest.raises(DataValidationError) as info:
        load_preferences(path)
    _assert_located(info.value, "uf.jsonl", 2, field)
    assert info.value.reason == reason


def test_string_prompt_with_message_lists_when_standard_format_is_forced():
    with pytest.raises(DataValidationError) as info:
        load_preferences(UF_ROWS, format="standard")
    _assert_located(info.value, "<memory>", 1, "chosen")
    assert info.value.reason == "wrong type"
