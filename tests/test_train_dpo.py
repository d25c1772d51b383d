"""DPO through TRL: loss variants and their known values at step 0, learning on clear pairs, LoRA without a second
model, the chat-format conversion of plain-string pairs, and the run directory it writes."""

import math

import pytest
from safetensors.torch import load_file

from rlhfkit.data import load_preferences
from rlhfkit.judges import VaderJudge
from rlhfkit.models import LoraSettings
from rlhfkit.runs import load
from rlhfkit.tiny import reviews_task
from rlhfkit.train.dpo import DPOSettings, LOSS_TYPES, prepare_preferences, train_dpo


@pytest.fixture(scope="module")
def task():
    return reviews_task()


@pytest.fixture(scope="module")
def clear_pairs(task):
    """Positive review chosen over negative review, no label noise: the demonstrations split by VADER score and
    zipped, prompts taken from the positive side."""
    demos = task.demonstrations
    scores = VaderJudge()([d["prompt"] for d in demos], [d["completion"] for d in demos])
    positive = [d for d, s in zip(demos, scores) if s > 0.5]
    negative = [d for d, s in zip(demos, scores) if s < -0.5]
    return [
        {"prompt": p["prompt"], "chosen": p["completion"], "rejected": n["completion"]}
        for p, n in zip(positive, negative)
    ]


@pytest.fixture
def model_loads(monkeypatch):
    """Names of the model classes loaded with from_pretrained during the test."""
    from transformers import PreTrainedModel

    original = PreTrainedModel.from_pretrained.__func__
    loads = []

    def counting(cls, *args, **kwargs):
        loads.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(counting))
    return loads


def _fast(**kw) -> DPOSettings:
    base = dict(max_steps=2, batch_size=4, warmup_steps=0, n_samples=0, device="cpu")
    return DPOSettings(**{**base, **kw})


def _step_rows(run):
    """The per-step training rows of metrics.jsonl (not TRL's end-of-training summary row)."""
    return run.metrics[run.metrics["rewards/margins"].notna()].reset_index(drop=True)


def _weights_changed(folder, base_folder) -> bool:
    new, old = load_file(str(folder / "model.safetensors")), load_file(str(base_folder / "model.safetensors"))
    shared = set(new) & set(old)
    assert shared, "no common tensors to compare"
    return any(not new[k].equal(old[k]) for k in shared)


# --- settings and data ------------------------------------------------------------------------------------------


def test_settings_validate_loss_type_and_label_smoothing():
    assert "robust" in LOSS_TYPES and "ipo" in LOSS_TYPES and "hinge" in LOSS_TYPES
    with pytest.raises(ValueError, match="unknown DPO loss_type 'dop'.*sigmoid"):
        DPOSettings(loss_type="dop")
    with pytest.raises(ValueError, match=r"robust.*\[0, 0.5\)"):
        DPOSettings(loss_type="robust", label_smoothing=0.6)
    with pytest.raises(ValueError, match="exo_pair.*> 0"):
        DPOSettings(loss_type="exo_pair", label_smoothing=0.0)
    assert DPOSettings(loss_type="robust").resolved_label_smoothing() == 0.1
    assert DPOSettings(loss_type="sigmoid").resolved_label_smoothing() == 0.0
    with pytest.raises(ValueError, match="beta must be > 0"):
        DPOSettings(beta=0)


def test_raw_string_pairs_become_conversational_for_a_chat_tokenizer(tiny_tokenizer, clear_pairs):
    dataset, fmt = prepare_preferences(clear_pairs[:3], tiny_tokenizer)
    assert fmt.startswith("conversational")
    assert dataset.column_names == ["prompt", "chosen", "rejected"]
    row = dataset[0]
    assert row["prompt"] == [{"role": "user", "content": clear_pairs[0]["prompt"]}]
    assert row["chosen"] == [{"role": "assistant", "content": clear_pairs[0]["chosen"]}]
    # The prompt then renders exactly as sampling renders it.
    from rlhfkit.sampling import render_prompts

    rendered = tiny_tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    assert rendered == render_prompts(tiny_tokenizer, [clear_pairs[0]["prompt"]])[0]

    # Opting out, or prompts that are already rendered, stay plain strings.
    _, fmt = prepare_preferences(clear_pairs[:3], tiny_tokenizer, chat=False)
    assert fmt == "standard"
    rendered_rows = [{**r, "prompt": render_prompts(tiny_tokenizer, [r["prompt"]])[0]} for r in clear_pairs[:3]]
    with pytest.warns(UserWarning, match="already rendered"):
        dataset, fmt = prepare_preferences(rendered_rows, tiny_tokenizer)
    assert fmt == "standard" and isinstance(dataset[0]["prompt"], str)
    # PreferenceData and datasets pass through; extra columns are dropped for TRL; conversational rows stay as
    # they are.
    prefs = load_preferences([{**r, "annotator": "me"} for r in clear_pairs[:3]])
    dataset, _ = prepare_preferences(prefs, tiny_tokenizer)
    assert dataset.column_names == ["prompt", "chosen", "rejected"]
    import datasets

    messages = [
        {
            "prompt": [{"role": "user", "content": r["prompt"]}],
            "chosen": [{"role": "assistant", "content": r["chosen"]}],
            "rejected": [{"role": "assistant", "content": r["rejected"]}],
        }
        for r in clear_pairs[:3]
    ]
    dataset, fmt = prepare_preferences(datasets.Dataset.from_list(messages), tiny_tokenizer)
    assert fmt == "conversational" and dataset.to_list() == messages


def test_bad_inputs_fail_early_with_a_clear_message(tiny_model, clear_pairs, tmp_path):
    with pytest.raises(TypeError, match="save_pretrained"):
        train_dpo(tiny_model, clear_pairs[:4], _fast(), tmp_path / "run")
    with pytest.raises(ValueError, match="row 2, field 'rejected'"):
        train_dpo("tiny", [clear_pairs[0], {**clear_pairs[1], "rejected": ""}], _fast(), tmp_path / "run")


# --- training ---------------------------------------------------------------------------------------------------


def test_dpo_trains_and_writes_a_complete_run(tiny_path, clear_pairs, task, tmp_path, model_loads):
    run = train_dpo(tiny_path, clear_pairs[:16], _fast(max_steps=3, n_samples=3), tmp_path / "dpo", task=task)
    assert model_loads == ["LlamaForCausalLM"] * 2  # the policy and, from the same folder, the reference
    assert run.status["state"] == "finished" and run.stage == "dpo"
    assert run.config["settings"]["loss_type"] == "sigmoid" and run.config["reference"] == str(tiny_path)
    rows = _step_rows(run)
    assert rows.step.tolist() == [1, 2, 3]
    # Policy == reference at step 0, so the sigmoid loss is -log sigmoid(0) = ln 2.
    assert rows.loss[0] == pytest.approx(math.log(2), abs=1e-3)
    assert rows["rewards/margins"][0] == pytest.approx(0.0, abs=1e-4)
    assert _weights_changed(run.model_path, tiny_path)
    # Samples before and after training on eval prompts, with gold scores.
    samples = run.samples
    assert sorted(samples["when"].unique()) == ["after", "before"]
    assert (samples.groupby("when").size() == 3).all()
    assert set(samples.prompt) <= set(task.eval_prompts)
    assert samples.gold_score.between(-1, 1).all()
    summary = run.summary
    for key in (
        "loss",
        "rewards/accuracies",
        "rewards/margins",
        "rewards/chosen",
        "rewards/rejected",
        "steps",
        "seconds",
        "samples/gold_before",
        "samples/gold_after",
    ):
        assert summary[key] is not None, key
    assert summary["steps"] == 3 and summary["data_format"].startswith("conversational")
    assert load(tmp_path / "dpo").summary == summary


@pytest.mark.parametrize(
    "loss_type, first_loss",
    [
        ("sigmoid", math.log(2)),  # -log sigmoid(0)
        ("ipo", 1 / (4 * 0.1**2)),  # (0 - 1/(2 beta))^2 = 25 at beta 0.1
        ("hinge", 1.0),  # relu(1 - 0)
        ("robust", math.log(2)),  # [(1-e) ln2 - e ln2] / (1 - 2e) = ln 2 for any e
    ],
)
def test_each_loss_type_runs_and_starts_at_its_known_value(tiny_path, clear_pairs, tmp_path, loss_type, first_loss):
    run = train_dpo(tiny_path, clear_pairs[:8], _fast(loss_type=loss_type, beta=0.1), tmp_path / loss_type)
    rows = _step_rows(run)
    assert len(rows) == 2 and rows["rewards/margins"].notna().all()
    assert rows.loss[0] == pytest.approx(first_loss, rel=1e-3)
    assert run.summary["loss_type"] == loss_type
    if loss_type == "robust":
        assert run.summary["label_smoothing"] == 0.1


def test_margins_and_accuracy_grow_on_clear_pairs(tiny_path, clear_pairs, tmp_path):
    settings = _fast(max_steps=-1, epochs=3, batch_size=16, learning_rate=1e-3)
    run = train_dpo(tiny_path, clear_pairs[:48], settings, tmp_path / "clear")
    rows = _step_rows(run)
    assert len(rows) == 9
    early, late = rows.iloc[:2], rows.iloc[-3:]
    assert late["rewards/margins"].mean() > early["rewards/margins"].mean() + 0.5
    assert late["rewards/accuracies"].mean() >= 0.9
    assert late["rewards/chosen"].mean() > late["rewards/rejected"].mean()
    assert late["loss"].mean() < math.log(2) - 0.1


def test_lora_trains_only_the_adapter_and_loads_no_second_model(tiny_path, clear_pairs, tmp_path, model_loads):
    from transformers import TrainerCallback

    class Trainable(TrainerCallback):
        names: list = []

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            Trainable.names = [n for n, p in model.named_parameters() if p.requires_grad]

    settings = _fast(lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    run = train_dpo(tiny_path, clear_pairs[:8], settings, tmp_path / "lora", callbacks=[Trainable()])
    assert model_loads == ["LlamaForCausalLM"], f"expected only the policy to be loaded, got {model_loads}"
    assert Trainable.names and all("lora_" in n for n in Trainable.names)
    assert "adapter disabled" in run.summary["reference"]
    rows = _step_rows(run)
    assert rows.loss[0] == pytest.approx(math.log(2), abs=1e-3)  # a fresh adapter is a no-op: policy == reference
    # The adapter alone is kept; model/ holds plain merged weights that differ from the base.
    assert (run.path / "adapter" / "adapter_model.safetensors").exists()
    assert not (run.model_path / "adapter_config.json").exists()
    assert _weights_changed(run.model_path, tiny_path)
