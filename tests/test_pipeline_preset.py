"""The real-model preset of the pipeline: `PipelineSettings.for_model("smollm2-135m")` and `rlhfkit pipeline --model
smollm2-135m`. The settings and the skip_sft wiring are tested here without training (fast). The whole pipeline on
SmolLM2-135M-Instruct at a microscopic budget runs in notebook 07's smoke test (tests/test_notebooks.py checks its
output folder), and single LoRA PPO and DPO steps on it in tests/test_models_gguf.py."""

import json
import time
from dataclasses import replace

import pytest

from rlhfkit.models import SMOLLM2
from rlhfkit.pipeline import PRESETS, PipelineSettings, _scaled_steps, _settings_record

STAGES = ("sft", "reward", "ppo", "dpo", "rloo")


def test_the_smollm2_preset_uses_lora_rates_for_a_real_model_short_answers_and_skips_sft():
    settings = PipelineSettings.for_model(SMOLLM2)
    assert settings.model == SMOLLM2 and settings.skip_sft
    for stage in STAGES:
        lora = getattr(settings, stage).lora
        assert (lora.r, lora.alpha, lora.target_modules) == (16, 32, "all-linear"), stage
    # Adapter learning rates: above full fine-tuning's for a pretrained model, below the embedded default's.
    for stage in STAGES:
        assert 1e-4 <= getattr(settings, stage).learning_rate <= 5e-4, stage
    assert settings.methods == ("ppo", "dpo") and settings.n_label_prompts * settings.max_pairs_per_prompt >= 384
    assert settings.ppo.max_new_tokens == settings.rloo.max_completion_length == 48
    assert settings.evaluation.max_new_tokens == settings.label_settings().max_new_tokens == 48
    # PPO's value function: the reward model with its backbone frozen (only the score head trains), not a head on the
    # LoRA policy: with that head PPO drifted to KL 6-8 while its reward did not rise (the preset's docstring)
    assert settings.ppo.separate_value_model and not settings.ppo.trains_value_backbone
    # Smaller than the embedded default's budgets; --quick smaller still.
    default, quick = PipelineSettings(), PipelineSettings.for_model(SMOLLM2, quick=True)
    assert settings.n_label_prompts < default.n_label_prompts and settings.ppo.batch_size < default.ppo.batch_size
    assert PipelineSettings.quick(model=SMOLLM2) == quick and quick.skip_sft and quick.ppo.lora is not None
    assert quick.n_label_prompts < settings.n_label_prompts and quick.evaluation.n_prompts < 64
    for stage in STAGES:
        (few,), (many,) = (
            _scaled_steps(getattr(quick, stage), 1).values(),
            _scaled_steps(getattr(settings, stage), 1).values(),
        )
        assert few < many, stage


def test_overrides_replace_the_presets_fields():
    settings = PipelineSettings.for_model(SMOLLM2, skip_sft=False, seed=3, methods=("dpo",), out_dir="x")
    assert not settings.skip_sft and settings.seed == 3 and settings.methods == ("dpo",) and settings.out_dir == "x"
    assert settings.dpo.lora is not None
    # report_to reaches every stage of the preset, as for the defaults
    tracked = PipelineSettings.for_model(SMOLLM2, report_to="tensorboard")
    assert {getattr(tracked, s).report_to for s in STAGES} == {"tensorboard"}


def test_resized_changes_only_the_budgets_named():
    base = PipelineSettings.for_model(SMOLLM2)
    small = base.resized(steps={"reward": 1, "ppo": 2}, label_prompts=4, eval_prompts=5, max_new_tokens=12)
    assert (small.reward.max_steps, small.ppo.total_steps) == (1, 2)
    assert (small.dpo.max_steps, small.rloo.max_steps) == (base.dpo.max_steps, base.rloo.max_steps)
    assert (small.n_label_prompts, small.n_rm_check_prompts, small.evaluation.n_prompts) == (
        4,
        base.n_rm_check_prompts,
        5,
    )
    lengths = (small.candidate_max_new_tokens, small.ppo.max_new_tokens, small.dpo.sample_max_new_tokens)
    assert lengths + (small.rloo.max_completion_length, small.evaluation.max_new_tokens) == (12,) * 5
    assert small.ppo.lora == base.ppo.lora and small.ppo.learning_rate == base.ppo.learning_rate
    assert base.resized() == base
    with pytest.raises(ValueError, match="unknown stages \\['value'\\]"):
        base.resized(steps={"value": 3})


def test_the_embedded_default_and_models_without_a_preset_keep_exactly_the_old_settings():
    assert SMOLLM2 in PRESETS and "tiny" not in PRESETS
    assert PipelineSettings.for_model("tiny") == PipelineSettings() == PipelineSettings.for_model()
    assert PipelineSettings.for_model("some/folder") == PipelineSettings(model="some/folder")
    assert PipelineSettings.for_model("tiny", quick=True) == PipelineSettings.quick()
    default = PipelineSettings()
    assert not default.skip_sft and default.candidate_max_new_tokens is None and default.sft.lora is None
    assert default.sft.learning_rate == 3e-3 and default.ppo.total_steps == 24 and default.dpo.max_steps == 72
    # The fields added for the preset are left out of the record at their defaults: summary.json and the manifest
    # of the embedded default's run are as they were, and an earlier output is still continued.
    record = _settings_record(default)
    assert "skip_sft" not in record and "candidate_max_new_tokens" not in record
    preset = _settings_record(PipelineSettings.for_model(SMOLLM2))
    assert preset["skip_sft"] is True and preset["candidate_max_new_tokens"] == 48
    assert preset["sft"]["lora"]["r"] == 16


def test_the_cli_applies_the_preset_for_the_model_and_the_skip_sft_flag(monkeypatch, tmp_path):
    import rlhfkit.pipeline
    from rlhfkit.cli import main

    seen = []
    monkeypatch.setattr(rlhfkit.pipeline, "run_pipeline", lambda settings, **kw: seen.append(settings))
    out = str(tmp_path / "o")
    assert main(["pipeline", "--out", out]) == 0
    assert seen[-1] == PipelineSettings(out_dir=out)
    assert main(["pipeline", "--out", out, "--quick", "--skip-sft"]) == 0
    assert seen[-1] == replace(PipelineSettings.quick(out_dir=out), skip_sft=True)
    assert main(["pipeline", "--model", SMOLLM2, "--out", out]) == 0
    assert seen[-1] == PipelineSettings.for_model(SMOLLM2, out_dir=out) and seen[-1].methods == ("ppo", "dpo")
    assert main(["pipeline", "--out", out]) == 0 and seen[-1].methods == ("ppo", "dpo", "rloo")  # no preset: all
    assert main(["pipeline", "--model", SMOLLM2, "--out", out, "--methods", "dpo"]) == 0
    assert seen[-1] == PipelineSettings.for_model(SMOLLM2, out_dir=out, methods=("dpo",))
    assert main(["pipeline", "--model", SMOLLM2, "--out", out, "--quick", "--no-skip-sft"]) == 0
    assert seen[-1] == PipelineSettings.for_model(SMOLLM2, quick=True, out_dir=out, skip_sft=False)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("skip", [True, False])
def test_skip_sft_makes_the_starting_model_the_policy_that_is_labelled(monkeypatch, tmp_path, skip):
    # Training is stubbed: the pipeline stops at labelling, which shows which model it took as the SFT policy.
    from rlhfkit import pipeline, stages

    seen = {}

    def fake_sft(model, task, settings, out, **kwargs):
        seen["sft_from"] = model
        return type("Run", (), {"model_path": "SFT-MODEL"})()

    def fake_labels(policy, *args, **kwargs):
        seen["labelled"] = policy
        raise _Stop

    monkeypatch.setattr(pipeline, "resolve_model", lambda name: f"BASE({name})")
    monkeypatch.setattr(stages, "sft", fake_sft)
    monkeypatch.setattr(stages, "label_preferences", fake_labels)
    settings = PipelineSettings(out_dir=str(tmp_path / "out"), methods=("dpo",), skip_sft=skip)
    with pytest.raises(_Stop):
        pipeline.run_pipeline(settings, echo=False)
    if skip:
        assert seen == {"labelled": "BASE(tiny)"}
    else:
        assert seen == {"sft_from": "BASE(tiny)", "labelled": "SFT-MODEL"}
