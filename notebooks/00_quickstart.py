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
SEED = 0
THREADS = None  # torch CPU threads; None = 1 for the embedded default on a CPU (its matrices are too small
# to gain from a second thread, and one competing with any other busy process made
# training steps several times slower here), else torch's own default
METHODS = ["ppo", "dpo"]  # any of "ppo", "dpo", "rloo"
LORA_R = None  # None = train all weights; a rank (e.g. 16) trains LoRA adapters instead
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
# Each stage writes a **run directory** (config, metrics stream, samples, model) under `OUT`.

# %%
import html
import time
from dataclasses import replace

import pandas as pd
from IPython.display import HTML, Markdown, display

from rlhfkit.compare import gold_vs_kl_figure, summary_table, training_curves_figure
from rlhfkit.models import LoraSettings, load_policy, load_tokenizer
from rlhfkit.notebook import setup
from rlhfkit.pipeline import PipelineSettings, reload_runs, run_pipeline
from rlhfkit.sampling import SamplingSettings, sample_candidates

# Relative paths are taken from the project folder (the parent of notebooks/), so every notebook finds the others'
# runs wherever Jupyter was started. `setup` also picks the device and loads the task.
out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL, need_gold=False)

# %% [markdown]
# ## 2. The pipeline's settings
#
# `PipelineSettings` holds one settings object per stage; its defaults are the full `rlhfkit pipeline` run
# (about 5 minutes here). We shrink the budgets to fit a quick first look: fewer labelled prompts, 4 candidates
# each, fewer PPO and DPO steps, a smaller evaluation.

# %%
lora = LoraSettings(r=LORA_R, alpha=2 * LORA_R) if LORA_R else None
# With LoRA the learning rates below are common starting points for adapters on real models, not tuned here.
base = PipelineSettings(
    model=MODEL,
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
    sft=replace(base.sft, max_steps=SFT_STEPS, device=DEVICE, lora=lora, **({"learning_rate": 2e-4} if lora else {})),
    reward=replace(base.reward, device=DEVICE, lora=lora, **({"learning_rate": 1e-4} if lora else {})),
    # run_pipeline starts PPO's value function from the reward model, which needs a separate value model (with
    # LoRA, PPO would otherwise put a value head on the policy).
    ppo=replace(
        base.ppo,
        total_steps=PPO_STEPS,
        batch_size=PPO_BATCH_SIZE,
        device=DEVICE,
        lora=lora,
        **({"learning_rate": 1e-5, "value_model": "separate"} if lora else {}),
    ),
    dpo=replace(base.dpo, max_steps=DPO_STEPS, device=DEVICE, lora=lora, **({"learning_rate": 5e-6} if lora else {})),
    rloo=replace(base.rloo, device=DEVICE, lora=lora),
    evaluation=replace(base.evaluation, n_prompts=N_EVAL_PROMPTS, device=DEVICE),
)
pd.DataFrame(
    [
        (
            "SFT",
            f"{settings.sft.max_steps} steps x {settings.sft.batch_size} demonstrations, "
            f"lr {settings.sft.learning_rate:g}",
        ),
        ("labels", f"{settings.n_label_prompts} prompts x {settings.k} candidates, flip rate {settings.flip_rate}"),
        ("reward model", f"{settings.reward.epochs:g} epoch over the pairs, lr {settings.reward.learning_rate:g}"),
        (
            "PPO",
            f"{settings.ppo.total_steps} iterations x {settings.ppo.batch_size} prompts, beta {settings.ppo.kl_coef}",
        ),
        ("DPO", f"{settings.dpo.max_steps} steps x {settings.dpo.batch_size} pairs, beta {settings.dpo.beta}"),
        ("evaluation", f"{settings.evaluation.n_prompts} held-out prompts"),
    ],
    columns=["stage", "budget"],
)

# %% [markdown]
# ## 3. Run it
#
# One call: SFT → candidates → simulated labels → reward model → PPO and DPO → evaluation on held-out prompts →
# `report.html` and `summary.json`. Each stage prints when it starts and how long it took. `overwrite=True` starts
# over in `OUT` every time this cell runs, replacing only rlhfkit's own files there; without it, a run with the
# same settings continues an interrupted one and reuses the stages it finished.

# %%
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
table = summary_table(summary["policies"])
display(table.round(3))
rm = summary["reward_model"]
prefs = summary["preferences"]
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
runs = reload_runs(out_dir)  # the run directories, read back from disk (works after a kernel restart too)
training_curves_figure({name: run for name, run in runs.items() if name in METHODS}).show()
gold_vs_kl_figure(summary["policies"]).show()

# %% [markdown]
# ## 6. Samples side by side
#
# Greedy answers of each model to a few held-out prompts, with the gold judge's score. Model output is untrusted
# text: it is shown as plain table cells (pandas escapes HTML).

# %%
show_prompts = task.eval_prompts[:N_SHOW]
tokenizer = load_tokenizer(runs["sft"].model_path)
greedy = SamplingSettings(k=1, do_sample=False, max_new_tokens=64, seed=SEED)
side = pd.DataFrame({"prompt": show_prompts})
for name in ["sft", *[m for m in METHODS if m in runs]]:
    model = load_policy(runs[name].model_path, device=DEVICE)
    answers = sample_candidates(model, tokenizer, show_prompts, greedy, progress=False).response.tolist()
    side[name] = answers
    side[f"{name} gold"] = gold(show_prompts, answers)
    del model
with pd.option_context("display.max_colwidth", 200):
    display(side.round(3))

# %% [markdown]
# ## 7. The report
#
# `report.html` is self-contained (plotly inlined, model text escaped): send it to a colleague as it is. Shown
# here in a sandboxed frame.

# %%
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
# The conclusions below are computed from this run's numbers, not written in advance: rerun with another seed
# or budget and they change with the evidence.

# %%
pol = summary["policies"]
sft_row = pol["sft"]
lines = []
acc, agree = rm["heldout_accuracy"], prefs["annotator_agreement_with_gold"]
lines.append(
    f"- **Reward model.** It ranks {acc:.1%} of {rm['heldout_pairs']} held-out pairs the way the gold judge does "
    f"(chance is 50%; the annotator it learned from agreed with gold on {agree:.1%} of its labels). "
    + (
        "A good proxy on these pairs."
        if acc >= 0.85
        else "A usable but noisy proxy: PPO optimises its mistakes along with its signal."
        if acc >= 0.7
        else "A weak proxy: much of what PPO optimises is the reward model's error."
        if acc >= 0.6
        else "Barely better than chance: PPO has little real signal to follow."
    )
)
for name in [m for m in METHODS if m in pol]:
    row = pol[name]
    verdict = table.set_index("policy").loc[name, "verdict"]
    gain = row["gold_reward_mean"] - sft_row["gold_reward_mean"]
    lo, hi = row["gold_reward_ci"]
    wl, wh = row["win_rate_vs_sft_ci"]
    length = row["mean_length"] / sft_row["mean_length"] - 1
    text = (
        f"- **{name.upper()}** ({verdict}): gold reward {row['gold_reward_mean']:.3f} [{lo:.3f}, {hi:.3f}] vs "
        f"SFT {sft_row['gold_reward_mean']:.3f} ({gain:+.3f}), gold win rate vs SFT {row['win_rate_vs_sft']:.2f} "
        f"[{wl:.2f}, {wh:.2f}], at KL {row['kl_to_ref']:.1f} nats."
    )
    if length > 0.2:
        text += (
            f" Its answers are {length:.0%} longer than SFT's (EOS rate {row['eos_rate']:.2f} vs "
            f"{sft_row['eos_rate']:.2f}); on this task more positive sentences also raise VADER, so part of "
            f"the gain may be length."
        )
    elif length < -0.2:
        text += f" Its answers are {-length:.0%} shorter than SFT's: the gain is not bought with length."
    lines.append(text)
ranked = sorted([m for m in METHODS if m in pol], key=lambda m: pol[m]["gold_reward_mean"], reverse=True)
if len(ranked) > 1:
    a, b = ranked[0], ranked[1]
    overlap = pol[b]["gold_reward_ci"][1] >= pol[a]["gold_reward_ci"][0]
    lines.append(
        f"- **{a.upper()} vs {b.upper()}.** {a.upper()} has the higher gold reward "
        f"({pol[a]['gold_reward_mean']:.3f} vs {pol[b]['gold_reward_mean']:.3f}) "
        + (
            "but the intervals overlap: on this budget the two are not distinguishable on gold reward. "
            if overlap
            else "and the intervals do not overlap. "
        )
        + f"{a.upper()} moved {pol[a]['kl_to_ref']:.1f} nats from SFT, {b.upper()} {pol[b]['kl_to_ref']:.1f}"
        + (
            f": {a.upper()} got at least as much reward for less drift."
            if pol[a]["kl_to_ref"] <= pol[b]["kl_to_ref"]
            else ": the two sit at different KL, so the fair comparison is at equal KL (notebook 06)."
        )
    )
lines.append(
    f"- One seed, {pol['sft']['n_samples']} evaluation samples per policy, {wall:.0f} s of compute: "
    f"treat these as a first look, not a benchmark."
)
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Next
#
# - `01_sft`: what supervised fine-tuning changes, with before/after samples.
# - `03_reward_model`: the pairwise loss, accuracy against gold, and what annotator noise costs.
# - `02_preferences`, `04_ppo`, `05_dpo`, `06_compare`: coming (see `notebooks/README.md`).
