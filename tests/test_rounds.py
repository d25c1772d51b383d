"""Iterated rounds (rlhfkit.rounds) on the embedded default: what a round labels, trains and measures; that a
finished loop is read back, people label between rounds, and a loop killed between or inside rounds loses nothing."""

import json
from dataclasses import replace
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from rlhfkit.evaluation import EvalSettings
from rlhfkit.labeling import LabelStore
from rlhfkit.rounds import PEOPLE, RoundSettings, overoptimization_gap, run_rounds
from rlhfkit.train.ppo import PPOSettings
from rlhfkit.train.reward import RewardSettings

ROOT = Path(__file__).resolve().parents[1]
SMALL = RoundSettings(
    rounds=2,
    prompts_per_round=6,
    k=3,
    max_pairs_per_prompt=3,
    max_new_tokens=12,
    n_check_prompts=6,
    check_k=3,
    reward=RewardSettings(max_steps=3, batch_size=4),
    ppo=PPOSettings(total_steps=2, batch_size=4, max_new_tokens=12, num_ppo_epochs=1, progress=False, device="cpu"),
    evaluation=EvalSettings(n_prompts=6, max_new_tokens=12, n_bootstrap=50, batch_size=6),
)


def _task():
    from rlhfkit.tiny.task import reviews_task

    return reviews_task(n_train_prompts=24, n_eval_prompts=8, n_demonstrations=10)


def _judgments(store_path) -> pd.DataFrame:
    with LabelStore(store_path) as store:
        return pd.DataFrame(store.judgments())


def test_people_label_a_round_in_parts_and_it_trains_once_every_pair_is_labelled(tmp_path, tiny_path):
    out = tmp_path / "rounds"
    settings = replace(SMALL, rounds=1)
    waiting = run_rounds(tiny_path, _task(), settings, out, labeller=PEOPLE, annotator="alice", echo=False)
    assert waiting.rounds == [] and waiting.waiting["round"] == 1 and waiting.waiting["annotator"] == "alice"
    total = waiting.waiting["pending"]
    assert total > 2 and not (out / "round-1" / "reward").exists()

    with LabelStore(waiting.store) as store:  # alice labels two pairs, then stops (a kernel restart, say)
        for item in store.pending("alice", "pair", limit=2):
            store.record(item["id"], "alice", choice="a")
    again = run_rounds(tiny_path, _task(), settings, out, labeller=PEOPLE, annotator="alice", echo=False)
    assert again.waiting["pending"] == total - 2  # what she labelled is not asked again

    with LabelStore(waiting.store) as store:
        for item in store.pending("alice", "pair", limit=100):
            store.record(item["id"], "alice", choice="b")
    done = run_rounds(tiny_path, _task(), settings, out, labeller=PEOPLE, annotator="alice", echo=False)
    assert done.waiting is None and [r["round"] for r in done.rounds] == [1]
    judged = _judgments(done.store)
    assert len(judged) == total and (judged.status == "active").all()
    prefs = pd.read_json(out / "round-1" / "preferences.jsonl", lines=True)
    assert len(prefs) == total and set(prefs.annotator) == {"alice"}


def test_rounds_killed_in_round_two_resume_there_then_label_train_and_measure_on_every_label(tmp_path, tiny_path):
    """Round 1 runs in a process killed (SIGKILL) once round 2 has started; the next call reads round 1 back, runs
    round 2 without asking any label twice, and a third call reads both back without sampling or training."""
    out = tmp_path / "rounds"
    script = (
        "import sys; sys.path.insert(0, {tests!r}); from test_rounds import SMALL, _task\n"
        "from rlhfkit.rounds import run_rounds\n"
        "run_rounds({model!r}, _task(), SMALL, {out!r}, echo=False)\n"
    ).format(tests=str(ROOT / "tests"), model=str(tiny_path), out=str(out))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RLHFKIT_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (out / "round-2" / "candidates.jsonl").exists():  # round 1 finished, round 2 under way
            assert child.poll() is None, "the loop ended before round 2 started"
            assert time.monotonic() < deadline, "round 2 did not start within 10 minutes"
            time.sleep(0.2)
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert (out / "round-1" / "round.json").exists() and not (out / "round-2" / "round.json").exists()
    round_one = (out / "round-1" / "round.json").read_text()
    before = _judgments(out / "labels.sqlite")

    done = run_rounds(tiny_path, _task(), SMALL, out, echo=False)
    assert (out / "round-1" / "round.json").read_text() == round_one  # read back, not redone
    after = _judgments(out / "labels.sqlite")
    # Every judgment made before the kill is still there, unchanged; each item has exactly one.
    kept = after.set_index("id").loc[before.id, ["item_id", "choice", "status"]]
    assert kept.reset_index(drop=True).equals(before[["item_id", "choice", "status"]].reset_index(drop=True))
    assert after.item_id.is_unique and (after.status == "active").all()

    table = done.table()
    assert table["round"].tolist() == [1, 2] and done.waiting is None
    # Round 2's reward model trains on both rounds' labels; round 1 had no reward model before it.
    first, second = done.rounds
    assert second["pairs_total"] == first["pairs_total"] + second["pairs_new"] > first["pairs_total"] > 0
    assert first["rm_accuracy_before"] is None and 0.0 <= second["rm_accuracy_before"] <= 1.0
    for r in done.rounds:
        assert 0.0 <= r["rm_accuracy_after"] <= 1.0 and r["kl_to_ref"] >= 0.0
        assert -1.0 <= r["overoptimization_gap"] <= 1.0
    prefs = pd.read_json(out / "round-2" / "preferences.jsonl", lines=True)
    assert set(prefs.item_source) == {"round-1", "round-2"} and len(prefs) == second["pairs_total"]

    # Round 2 continued from round 1's policy, with the starting model as its reference ...
    ppo_config = json.loads((out / "round-2" / "ppo" / "config.json").read_text())["config"]
    assert Path(ppo_config["policy_path"]) == Path(first["policy"])
    assert Path(ppo_config["reference_path"]) == Path(tiny_path)
    # ... and labelled round 1's policy's candidates, on prompts no other round labelled.
    c1, c2 = (pd.read_json(out / f"round-{r}" / "candidates.jsonl", lines=True) for r in (1, 2))
    assert not set(c1.prompt) & set(c2.prompt)
    with LabelStore(done.store) as store:
        assert {it["source"] for it in store.items(after.item_id)} == {"round-1", "round-2"}
        assert store.count("pair") == len(after)

    # A further call reads the finished rounds back: nothing sampled, labelled or trained again.
    stamp = (out / "round-2" / "reward" / "status.json").stat().st_mtime_ns
    again = run_rounds(tiny_path, _task(), SMALL, out, echo=False)
    pd.testing.assert_frame_equal(again.table(), table)
    assert len(_judgments(done.store)) == len(after)
    assert (out / "round-2" / "reward" / "status.json").stat().st_mtime_ns == stamp
    # Other settings on the same folder are refused, not mixed in.
    with pytest.raises(ValueError, match=r"round-1 was made with other settings \(ppo differ\)"):
        run_rounds(tiny_path, _task(), replace(SMALL, ppo=replace(SMALL.ppo, total_steps=3)), out, echo=False)


def test_the_overoptimization_gap_compares_proxy_and_gold_percentiles():
    reference = pd.DataFrame({"proxy": [0.0, 1.0, 2.0, 3.0], "gold": [0.0, 1.0, 2.0, 3.0]})
    # The reward model thinks the policy beats every reference sample; gold puts it in the middle.
    policy = pd.DataFrame({"proxy": [9.0, 9.0], "gold": [1.5, 1.5]})
    assert overoptimization_gap(policy, reference) == pytest.approx(1.0 - 0.5)
    assert overoptimization_gap(reference, reference) == pytest.approx(0.0)


def test_round_settings_are_checked():
    with pytest.raises(ValueError, match="reward_init"):
        RoundSettings(reward_init="scratch")
    with pytest.raises(ValueError, match="prompts_per_round"):
        RoundSettings(prompts_per_round=0)
    with pytest.raises(ValueError, match="needs train prompts 25-36"):
        from rlhfkit.rounds import _round_prompts

        _round_prompts(_task(), RoundSettings(prompts_per_round=12), 3)
