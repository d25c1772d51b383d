"""SFT through TRL: what the model is trained on (chat template, completion-only loss, EOS), that training moves
weights and loss, the run directory, LoRA, and resuming after an interrupt."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from rlhfkit.data import DataValidationError, Task
from rlhfkit.models import LoraSettings
from rlhfkit.runs import load
from rlhfkit.sampling import render_prompts
from rlhfkit.train.sft import SFTSettings, sft_rows, train_sft


@pytest.fixture(scope="module")
def small_task():
    """The reviews task cut down: 16 demonstrations (2 batches of 8), 2 held-out prompts, the VADER gold judge."""
    from rlhfkit.tiny import reviews_task

    task = reviews_task(n_train_prompts=32, n_eval_prompts=2, n_demonstrations=16)
    return Task(
        name="reviews-small",
        train_prompts=task.train_prompts,
        eval_prompts=task.eval_prompts,
        demonstrations=task.demonstrations,
        gold_judge=task.gold_judge,
    )


def quick(**kw):
    """Tiny budgets; no tqdm bars in test logs. A gentler learning rate than the default: with a handful of steps
    there is almost no warm-up, and the default's first full-size Adam steps raise the loss before it falls."""
    base = dict(
        learning_rate=1e-3,
        batch_size=8,
        n_samples=0,
        sample_max_new_tokens=24,
        save_steps=100,
        trl_overrides={"disable_tqdm": True},
    )
    base.update(kw)
    return SFTSettings(**base)


class FirstExample(TrainerCallback):
    """Records the first tokenized training example the trainer will feed the model."""

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.example = dict(train_dataloader.dataset[0])


class Snapshot(TrainerCallback):
    """Parameters of the trained model at the start and at the end of training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()}

    def changed(self):
        return sorted(n for n in self.before if not torch.equal(self.before[n], self.after[n]))


def test_sft_trains_writes_the_run_and_reloads(tiny_path, tiny_tokenizer, tiny_model, small_task, tmp_path):
    first = FirstExample()
    run = train_sft(tiny_path, small_task, quick(max_steps=8, n_samples=2), tmp_path / "sft", callbacks=[first])

    # What TRL trains on: the prompt rendered with the generation prompt is a prefix, the loss covers the
    # completion only, and the completion ends with <|end|> (the EOS token), which is a target: the model learns
    # to stop.
    demo = small_task.demonstrations[0]
    ids, labels = first.example["input_ids"], first.example["labels"]
    text = tiny_tokenizer.decode(ids)
    assert text == f"<|user|>{demo['prompt']}<|end|><|assistant|>{demo['completion']}<|end|>"
    prompt_text = render_prompts(tiny_tokenizer, [demo["prompt"]])[0]
    assert text.startswith(prompt_text) and prompt_text.endswith("<|assistant|>")
    n_prompt = len(tiny_tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    assert ids[:n_prompt] == tiny_tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    assert set(labels[:n_prompt]) == {-100}
    assert labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == labels[-1] == tiny_tokenizer.eos_token_id

    # The run directory, read back.
    assert run.status["state"] == "finished" and run.stage == "sft"
    assert json.loads((tmp_path / "sft" / "config.json").read_text())["config"]["learning_rate"] == 1e-3
    assert run.config["seed"] == 0 and run.config["chat"] is True
    assert run.metrics.dropna(subset=["loss"])["step"].tolist() == list(range(1, 9))
    assert {"loss", "mean_token_accuracy", "learning_rate"} <= set(run.metrics.columns)
    losses = run.metrics["loss"].dropna().tolist()
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses  # 4 epochs over 16 rows: the loss must fall
    assert run.summary["steps"] == 8 and run.summary["train_loss"] == pytest.approx(losses[-1])
    assert 0 < run.summary["mean_token_accuracy"] <= 1 and run.summary["seconds"] > 0
    assert not (tmp_path / "sft" / "checkpoints").exists()  # a finished run keeps no optimizer state

    # Samples of held-out prompts before and after, with the gold score.
    samples = run.samples
    assert sorted(samples["model"].unique()) == ["after", "before"]
    assert samples.groupby("model").size().tolist() == [2, 2]
    assert set(samples["prompt"]) == set(small_task.eval_prompts) and samples["held_out"].all()
    assert samples["gold"].between(-1, 1).all()
    assert samples.loc[samples.model == "after", "step"].tolist() == [8, 8]

    # The saved model reloads with plain transformers, weights changed, tokenizer (with template) alongside.
    trained = AutoModelForCausalLM.from_pretrained(run.model_path)
    original = dict(tiny_model.named_parameters())
    diffs = [float((p.detach() - original[n].detach()).abs().max()) for n, p in trained.named_parameters()]
    assert max(diffs) > 1e-3
    tokenizer = AutoTokenizer.from_pretrained(run.model_path)
    assert tokenizer.chat_template == tiny_tokenizer.chat_template and tokenizer.eos_token == "<|end|>"
    assert load(tmp_path / "sft").model_path == run.model_path


def test_lora_sft_changes_only_adapter_weights(tiny_path, tiny_model, small_task, tmp_path):
    snapshot = Snapshot()
    run = train_sft(
        tiny_path,
        small_task,
        quick(max_steps=3, lora=LoraSettings(r=4, alpha=8, dropout=0.0)),
        tmp_path / "lora",
        callbacks=[snapshot],
    )
    changed = snapshot.changed()
    assert changed and all("lora_" in n for n in changed), changed
    assert any("lora_B" in n for n in changed)
    assert (run.path / "adapter" / "adapter_config.json").exists()
    # run/model is the merged model: a plain causal LM, different from the base where adapters were added.
    merged = AutoModelForCausalLM.from_pretrained(run.model_path)
    names = [n for n, _ in merged.named_parameters()]
    assert not any("lora" in n for n in names)
    base = dict(tiny_model.named_parameters())
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(dict(merged.named_parameters())[q_proj], base[q_proj])
    assert torch.equal(dict(merged.named_parameters())["model.norm.weight"], base["model.norm.weight"])
    assert run.summary["lora"] is True


class InterruptAt(TrainerCallback):
    """Simulates Ctrl-C at the start of step `step + 1`, after `step` steps were taken and logged."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_interrupt_keeps_a_checkpoint_and_resume_finishes(tiny_path, small_task, tmp_path):
    folder = tmp_path / "resume"
    settings = quick(max_steps=6, batch_size=4)
    with pytest.raises(KeyboardInterrupt):
        train_sft(tiny_path, small_task, settings, folder, callbacks=[InterruptAt(3)])
    stopped = load(folder)
    assert stopped.status["state"] == "interrupted" and stopped.status["step"] == 3
    assert stopped.status["checkpoint"].endswith("checkpoint-3")
    assert stopped.metrics.dropna(subset=["loss"])["step"].tolist() == [1, 2, 3]
    assert stopped.model_path is None and not stopped.summary

    run = train_sft(tiny_path, small_task, settings, folder, resume=True)
    assert run.status["state"] == "finished"
    assert run.metrics.dropna(subset=["loss"])["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert run.summary["steps"] == 6 and run.model_path is not None
    # The resumed steps continue the same schedule rather than restarting it (cosine decays to ~0 at step 6).
    lrs = run.metrics.dropna(subset=["loss"])["learning_rate"].tolist()
    assert lrs[1] == max(lrs) and all(a > b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] < 0.2 * max(lrs)


def test_rows_are_validated_and_strings_become_chat_turns():
    rows, source = sft_rows([{"prompt": "Review X.", "completion": "Great."}], chat=True)
    assert rows == [
        {
            "prompt": [{"role": "user", "content": "Review X."}],
            "completion": [{"role": "assistant", "content": "Great."}],
        }
    ]
    plain, _ = sft_rows([{"prompt": "Review X.", "completion": "Great."}], chat=False)
    assert plain == [{"prompt": "Review X.", "completion": "Great."}]
    with pytest.raises(DataValidationError, match=r"row 2, field 'completion': empty text"):
        sft_rows([{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "  "}], chat=True)
    with pytest.raises(DataValidationError, match=r"row 1, field 'prompt': missing"):
        sft_rows([{"completion": "b"}], chat=True)
    with pytest.raises(DataValidationError, match="message list without a chat template"):
        sft_rows([{"prompt": [{"role": "user", "content": "a"}], "completion": "b"}], chat=False)
    with pytest.raises(TypeError, match="prompt' and 'completion'"):
        sft_rows("not data", chat=True)


def test_a_lora_run_does_not_depend_on_what_ran_before_in_the_process(tmp_path, tiny_path):
    """The adapter's random start is seeded: the same LoRA run gives the same weights after any other work drew
    from the global generators (a notebook kernel does that all the time)."""
    import torch
    from safetensors.torch import load_file

    from rlhfkit.models import LoraSettings
    from rlhfkit.tiny.task import reviews_task
    from rlhfkit.train.sft import SFTSettings, train_sft

    task = reviews_task(n_train_prompts=8, n_eval_prompts=2, n_demonstrations=16)
    settings = SFTSettings(max_steps=2, batch_size=4, n_samples=0, device="cpu", lora=LoraSettings(r=4, alpha=8))
    weights = []
    for i, noise in enumerate((0, 5)):
        torch.rand(noise)  # other work in the same process
        run = train_sft(tiny_path, task, settings, tmp_path / f"run{i}")
        weights.append(load_file(run.path / "adapter" / "adapter_model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
