"""Several criteria (rlhfkit.criteria): a reward model per criterion, PPO per weighting, the gold frontier."""

import json

import pandas as pd
import pytest

from rlhfkit import stages
from rlhfkit.criteria import CriteriaSettings, criteria_frontier, weights_tag
from rlhfkit.evaluation import EvalSettings
from rlhfkit.judges import SimulatedAnnotator
from rlhfkit.labeling import LabelStore, annotate_with_judge
from rlhfkit.sampling import SamplingSettings, candidate_pairs
from rlhfkit.train.ppo import PPOSettings
from rlhfkit.train.reward import RewardSettings

SMALL = CriteriaSettings(
    weights=[{"positive": 1.0}, {"positive": 0.5, "brief": 0.5}],
    reward=RewardSettings(max_steps=3, batch_size=4),
    ppo=PPOSettings(total_steps=2, batch_size=4, max_new_tokens=12, num_ppo_epochs=1, progress=False, device="cpu"),
    evaluation=EvalSettings(n_prompts=6, max_new_tokens=12, n_bootstrap=50, batch_size=6),
    n_reference=8,
)


def _task():
    from rlhfkit.tiny.task import reviews_task

    return reviews_task(n_train_prompts=12, n_eval_prompts=6, n_demonstrations=10)


def _labelled_store(path, policy, task):
    """Pairs of the policy's candidates, labelled on both criteria by simulated annotators of the gold criteria."""
    table = stages.candidates(
        policy, task.train_prompts, SamplingSettings(k=3, max_new_tokens=12, seed=0), progress=False
    )
    with LabelStore(path) as store:
        store.add_pairs(candidate_pairs(table, 3, seed=0))
        for criterion in ("positive", "brief"):
            annotate_with_judge(
                store,
                SimulatedAnnotator(task.gold_for(criterion), noise="none"),
                "sim",
                criterion=criterion,
                progress=False,
            )
    return path


def test_the_frontier_trains_a_reward_model_per_criterion_and_a_policy_per_weighting(tmp_path, tiny_path):
    task = _task()
    store = _labelled_store(tmp_path / "labels.sqlite", tiny_path, task)
    out = tmp_path / "criteria"
    frontier = criteria_frontier(tiny_path, task, store, SMALL, out, echo=False)

    assert frontier.policy.tolist() == ["sft", "positive1", "brief0.5-positive0.5"]
    assert frontier[["w_positive", "w_brief"]].values.tolist() == [[0.0, 0.0], [1.0, 0.0], [0.5, 0.5]]
    # Each policy's "brief" gold is minus its mean word count, measured on the same samples.
    assert frontier.gold_brief.tolist() == pytest.approx((-frontier.mean_words).tolist())
    for c in ("positive", "brief"):
        assert (frontier[f"gold_{c}_ci_lo"] <= frontier[f"gold_{c}"]).all()
        assert (frontier[f"gold_{c}"] <= frontier[f"gold_{c}_ci_hi"]).all()
    assert frontier.kl_to_ref.iloc[0] == 0.0 and (frontier.kl_to_ref.iloc[1:] >= 0).all()

    # One reward model per criterion, each trained on that criterion's judgments only.
    for c in ("positive", "brief"):
        prefs = pd.read_json(out / f"preferences-{c}.jsonl", lines=True)
        assert set(prefs.criterion) == {c} and (out / f"reward-{c}" / "model").is_dir()
    ppo_config = json.loads((out / "ppo-brief0.5-positive0.5" / "config.json").read_text())["config"]
    assert ppo_config["reward_fn"] == "combined(positive=0.5, brief=0.5)"
    saved = json.loads((out / "frontier.json").read_text())
    assert saved["criteria"] == ["positive", "brief"] and len(saved["frontier"]) == 3

    # A second call reuses every finished step.
    stamp = (out / "reward-brief" / "status.json").stat().st_mtime_ns
    again = criteria_frontier(tiny_path, task, store, SMALL, out, echo=False)
    pd.testing.assert_frame_equal(again, frontier)
    assert (out / "reward-brief" / "status.json").stat().st_mtime_ns == stamp


def test_a_criterion_the_task_has_no_gold_judge_for_is_refused_before_training(tmp_path, tiny_path):
    settings = CriteriaSettings(weights=[{"honest": 1.0}])
    with pytest.raises(KeyError, match="no gold judge for criterion 'honest'"):
        criteria_frontier(tiny_path, _task(), tmp_path / "none.sqlite", settings, tmp_path / "out", echo=False)
    assert not (tmp_path / "out").exists()


def test_weightings_are_checked_and_named():
    assert weights_tag({"positive": 0.75, "brief": 0.25, "honest": 0.0}) == "brief0.25-positive0.75"
    with pytest.raises(ValueError, match="non-zero weight"):
        CriteriaSettings(weights=[{"positive": 0.0}])
    assert CriteriaSettings().criteria == ["positive", "brief"]


def test_a_file_of_someone_else_s_with_a_name_the_frontier_writes_is_refused(tmp_path, tiny_path):
    out = tmp_path / "criteria"
    out.mkdir()
    (out / "rlhfkit.json").write_text(json.dumps({"written_by": "rlhfkit", "kind": "criteria", "files": []}))
    (out / "frontier.json").write_text("my own notes")
    with pytest.raises(FileExistsError, match="frontier.json"):
        criteria_frontier(tiny_path, _task(), tmp_path / "labels.sqlite", SMALL, out, echo=False)
    assert (out / "frontier.json").read_text() == "my own notes"
