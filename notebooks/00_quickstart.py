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
# # 00 · Quickstart: the whole RLHF pipeline in one notebook
#
# **Reinforcement learning from human feedback** (RLHF) turns "which of these two answers is better?" judgments into
# a training signal for a language model. The recipe this notebook runs is the three-stage pipeline of
# Stiennon et al. (2020, *Learning to summarize from human feedback*) and Ouyang et al. (2022, *InstructGPT*):
#
# 1. **Supervised fine-tuning (SFT)**: imitate demonstrations, so the model answers in the right format at all.
# 2. **Reward model (RM)**: people compare pairs of the SFT model's answers; a model learns to score answers so that
#    the preferred one scores higher. Bradley-Terry: $P(y_c \succ y_r) = \sigma(r(x, y_c) - r(x, y_r))$, trained
#    with the pairwise loss $-\log \sigma(r_c - r_r)$.
# 3. **Reinforcement learning (PPO)**: the policy writes answers, the RM scores them, and PPO raises the score
#    while a KL penalty keeps the policy close to the SFT model:
#    $\max_\pi \; \mathbb{E}_{y \sim \pi}[\,r(x, y)\,] - \beta\, \mathrm{KL}(\pi \,\|\, \pi_\text{SFT})$.
#
# **DPO** (Rafailov et al. 2023) reaches the same objective's optimum directly from the preference pairs, with no
# reward model and no sampling loop. We run both from the same SFT model.
#
# Here the "people" are a **simulated annotator**: the task's gold judge (VADER sentiment: on the *reviews* task a
# more positive review is a better one) with 10% of its labels flipped. Because the gold judge is known, we can
# check every stage against it, which real RLHF cannot do. Notebooks 01-06 take each stage apart.
#
# **Run it:** *Run ▸ Run All Cells*. The defaults below are sized for about three minutes on two CPU cores
# (section 3 prints the seconds each stage took).

# %% tags=["parameters"]
# Parameters (papermill style: `papermill 00_quickstart.ipynb out.ipynb -p N_LABEL_PROMPTS 256` overrides them).
MODEL = "tiny"  # "tiny" = the embedded default (built offline on first use, ~1 min); or a Hub id / folder
TASK = "reviews"  # a builtin task, a prompts file, or a Hub dataset id
OUT = "runs/notebooks/00_quickstart"  # run directory; relative paths are relative to the project folder
DEVICE = None  # None = CUDA when present, else CPU; or "cpu", "cuda:1", ...
THREADS = None  # torch CPU threads; None = rlhfkit.threads' rule (1 for the embedded default on a CPU)
SEED = 0
METHODS = ["ppo", "dpo"]  # any of "ppo", "dpo", "rloo"
LORA_R = None  # None = the model's preset (all weights for "tiny"); a rank (e.g. 16) trains LoRA adapters
# Budgets
SFT_STEPS = 200  # SFT optimizer steps (batch 16)
N_LABEL_PROMPTS = 512  # train prompts whose SFT candidates the simulated annotator labels
K = 4  # candidates per prompt: up to K(K-1)/2 = 6 pairs each
FLIP_RATE = 0.1  # annotator noise: probability of preferring the gold-worse answer
PPO_STEPS = 20  # PPO iterations (each samples PPO_BATCH_SIZE prompts)
PPO_BATCH_SIZE = 32
DPO_STEPS = 32  # DPO optimizer steps (batch 32 pairs)
N_RM_CHECK_PROMPTS = 64  # held-out prompts whose candidate pairs test the reward model against gold
N_EVAL_PROMPTS = 64  # held-out prompts for the final evaluation
N_SHOW = 4  # held-out prompts shown side by side at the end
SHOW_REPORT = True  # show report.html inside the notebook

# A real pretrained model offline, on the CPU: SmolLM2-135M-Instruct with its preset (LoRA, learning rates for
# adapters, the instruct model as the starting policy: no SFT), at budgets two CPU cores can afford. Notebook 07
# runs the whole pipeline on it with the live dashboard and an LLM judge.
# MODEL = "smollm2-135m"
# N_LABEL_PROMPTS, K, PPO_STEPS, PPO_BATCH_SIZE, DPO_STEPS = 32, 3, 6, 8, 16
# N_RM_CHECK_PROMPTS, N_EVAL_PROMPTS = 16, 24

# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
# TASK = "reviews"        # or your own prompts file / Hub dataset with a gold judge
# DEVICE = "cuda"
# LORA_R = 16
# SFT_STEPS, N_LABEL_PROMPTS, K = 300, 1024, 4
# PPO_STEPS, PPO_BATCH_SIZE, DPO_STEPS = 100, 64, 200
# N_RM_CHECK_PROMPTS, N_EVAL_PROMPTS = 128, 128
# (learning rates for LoRA are set in section 2 below when LORA_R is given)

# %% [markdown]
# ## 1. Set-up
#
# Everything below is a thin layer over `rlhfkit`: the notebook holds the teaching, the package holds the code.
# Each stage writes a **run directory** (config, metrics stream, samples, model) under `OUT`. Relative paths are
# taken from the project folder (the parent of notebooks/), so every notebook finds the others' runs wherever
# Jupyter was started; `setup` also picks the device and loads the task and its gold judge.

# %%
from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)

# %% [markdown]
# ## 2. The pipeline's settings
#
# `PipelineSettings` holds one settings object per stage; its defaults are the full `rlhfkit pipeline` run
# (about 5 minutes here). We shrink the budgets to fit a quick first look: fewer labelled prompts, 4 candidates
# each, fewer PPO and DPO steps, a smaller evaluation.

# %%
from dataclasses import replace

import pandas as pd

from rlhfkit.models import LoraSettings
from rlhfkit.pipeline import PipelineSettings

lora = LoraSettings(r=LORA_R, alpha=2 * LORA_R) if LORA_R else None


def adapters(learning_rate, **more):
    """With LoRA: learning rates that are common starting points for adapters on real models (not tuned here)."""
    return {"lora": lora, "learning_rate": learning_rate, **more} if lora else {}


# `for_model`: the settings sized for MODEL (its preset when it has one, e.g. "smollm2-135m": LoRA, learning rates
# for adapters, no SFT for an instruct model); the parameters above then set the budgets.
base = PipelineSettings.for_model(
    MODEL,
    task=TASK,
    out_dir=str(out_dir),
    seed=SEED,
    methods=tuple(METHODS),
    n_label_prompts=N_LABEL_PROMPTS,
    k=K,
    flip_rate=FLIP_RATE,
    n_rm_check_prompts=N_RM_CHECK_PROMPTS,
)
settings = replace(
    base,
    sft=replace(base.sft, max_steps=SFT_STEPS, device=DEVICE, **adapters(2e-4)),
    reward=replace(base.reward, device=DEVICE, **adapters(1e-4)),
    # PPO's value function starts from the reward model (a separate value model; with LoRA its backbone stays
    # frozen and only its score head trains: PPOSettings' default).
    ppo=replace(
        base.ppo,
        total_steps=PPO_STEPS,
        batch_size=PPO_BATCH_SIZE,
        device=DEVICE,
        **adapters(1e-5),
    ),
    dpo=replace(base.dpo, max_steps=DPO_STEPS, device=DEVICE, **adapters(5e-6)),
    rloo=replace(base.rloo, device=DEVICE, lora=lora),
    evaluation=replace(base.evaluation, n_prompts=N_EVAL_PROMPTS, device=DEVICE),
)
s = settings
pd.Series(
    {
        "SFT": f"{s.sft.max_steps} steps x {s.sft.batch_size} demonstrations, lr {s.sft.learning_rate:g}",
        "labels": f"{s.n_label_prompts} prompts x {s.k} candidates, flip rate {s.flip_rate}",
        "reward model": f"{s.reward.epochs:g} epoch over the pairs, lr {s.reward.learning_rate:g}",
        "PPO": f"{s.ppo.total_steps} iterations x {s.ppo.batch_size} prompts, beta {s.ppo.kl_coef}",
        "DPO": f"{s.dpo.max_steps} steps x {s.dpo.batch_size} pairs, beta {s.dpo.beta}",
        "evaluation": f"{s.evaluation.n_prompts or len(task.eval_prompts)} held-out prompts",
    },
    name="budget",
).to_frame()

# %% [markdown]
# ## 3. Run it
#
# One call: SFT → candidates → simulated labels → reward model → PPO and DPO → evaluation on held-out prompts →
# `report.html` and `summary.json`. `run_pipeline` is the stages of `rlhfkit.stages` in order, the same functions
# notebooks 01-06 call one at a time. Each stage prints when it starts and how long it took. `overwrite=True`
# starts over in `OUT` every time this cell runs, replacing only rlhfkit's own files there; without it, a run with
# the same settings continues an interrupted one and reuses the stages it finished.

# %%
import time

from rlhfkit.pipeline import run_pipeline

started = time.perf_counter()
summary = run_pipeline(settings, echo=True, overwrite=True)
wall = time.perf_counter() - started
print(f"\npipeline wall time: {wall:.0f} s")

# %% [markdown]
# ## 4. The summary table
#
# - **gold reward**: the gold judge's mean score of each policy's samples on held-out prompts, with a bootstrap
#   95% interval. This is what we actually want to raise; the policies never saw the gold judge.
# - **proxy reward**: the reward model's score, the signal PPO optimised.
# - **KL to SFT**: how far the policy moved from the SFT model, in nats per response (k1 estimator on the
#   policy's own samples). It is the price paid for the reward.
# - **win rate vs SFT**: how often the gold judge prefers the policy's answer to the SFT answer on the same prompt.
# - **verdict**: "beats sft" only when the gold interval sits above SFT's mean *and* the win rate's interval is
#   above 0.5.

# %%
from IPython.display import display

from rlhfkit.compare import summary_table

display(summary_table(summary).round(3))
prefs, rm = summary["preferences"], summary["reward_model"]
print(
    f"preference pairs: {prefs['pairs']}, annotator agreement with gold: {prefs['annotator_agreement_with_gold']:.1%}"
)
print(f"reward model accuracy on {rm['heldout_pairs']} held-out gold-labelled pairs: {rm['heldout_accuracy']:.3f}")
pd.Series(summary["seconds"], name="seconds").to_frame().T

# %% [markdown]
# ## 5. Training curves and the reward-KL trade-off
#
# Left: the reward model's score of PPO's samples as it trains. Middle: its KL to SFT. Right: DPO's implicit
# reward margin $\beta\,[\log\frac{\pi(y_c)}{\pi_\text{ref}(y_c)} - \log\frac{\pi(y_r)}{\pi_\text{ref}(y_r)}]$.
# Below: gold reward against KL, one point per policy. Up and to the left is better: more reward for less drift.

# %%
from rlhfkit.compare import gold_vs_kl_figure, training_curves_figure
from rlhfkit.pipeline import reload_runs

runs = reload_runs(out_dir)  # the run directories, read back from disk (works after a kernel restart too)
training_curves_figure({name: run for name, run in runs.items() if name in METHODS}).show()
gold_vs_kl_figure(summary["policies"]).show()

# %% [markdown]
# ## 6. Samples side by side
#
# Greedy answers of each model to a few held-out prompts (`stages.candidates`, the sampler that draws the
# candidates people label), with the gold judge's score. Model output is untrusted text: it is shown as plain table
# cells (pandas escapes HTML).

# %%
from rlhfkit.compare import samples_side_by_side
from rlhfkit.models import resolve_model
from rlhfkit.sampling import SamplingSettings

greedy = SamplingSettings(k=1, do_sample=False, max_new_tokens=64, seed=SEED)
paths = {name: run.model_path for name, run in runs.items()}
paths.setdefault("sft", resolve_model(MODEL))  # no SFT run (an instruct model's preset): the model itself
shown = ["sft", *[m for m in METHODS if m in paths]]
answers = pd.concat(
    stages.candidates(paths[name], task.eval_prompts[:N_SHOW], greedy, progress=False).assign(policy=name)
    for name in shown
)
answers["gold"] = gold(answers.prompt.tolist(), answers.response.tolist())
with pd.option_context("display.max_colwidth", 200):
    display(samples_side_by_side(answers, shown, N_SHOW).dropna(axis=1, how="all").round(3))

# %% [markdown]
# ## 7. The report
#
# `report.html` is self-contained (plotly inlined, model text escaped): send it to a colleague as it is. Shown
# here in a sandboxed frame.

# %%
import html

from IPython.display import HTML

report = out_dir / "report.html"
print(f"report: {report} ({report.stat().st_size / 1e6:.1f} MB)")
if SHOW_REPORT:
    display(
        HTML(
            f'<div><iframe sandbox="allow-scripts" style="width:100%;height:640px;border:1px solid #ddd" '
            f'srcdoc="{html.escape(report.read_text(encoding="utf-8"), quote=True)}"></iframe></div>'
        )
    )

# %% [markdown]
# ## 8. What this run says
#
# The conclusions below are computed from this run's numbers by `rlhfkit.conclusions` (the rules live there, with
# tests), not written in advance: rerun with another seed or budget and they change with the evidence.

# %%
from IPython.display import Markdown

from rlhfkit.conclusions import length_effect, markdown, method_comparison, reward_model_accuracy, versus_baseline

pol = summary["policies"]
agreement = prefs["annotator_agreement_with_gold"]
says = [reward_model_accuracy(rm["heldout_accuracy"], rm["heldout_pairs"], label_agreement=agreement)]
for name in [m for m in METHODS if m in pol]:
    says += [
        versus_baseline(pol[name], pol["sft"], name=name.upper()),
        length_effect(pol[name], pol["sft"], name=name.upper()),
    ]
says.append(method_comparison(pol, METHODS))
says.append(
    f"One seed, {pol['sft']['n_samples']} evaluation samples per policy, {wall:.0f} s of compute: treat these as a "
    "first look, not a benchmark."
)
display(Markdown(markdown([c for c in says if c is not None])))

# %% [markdown]
# ## Next
#
# - `01_sft`: what supervised fine-tuning changes, with before/after samples.
# - `02_preferences`: candidates, labelling them yourself, simulated and AI annotators, and how far labels can be
#   trusted.
# - `03_reward_model`: the pairwise loss, accuracy against gold, and what annotator noise costs.
# - `04_ppo`, `05_dpo`, `06_compare`: PPO with reward hacking made visible, DPO and its variants, and the methods
#   compared honestly (see `notebooks/README.md`).
