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
# # 05 · DPO: preferences straight into the policy
#
# PPO (notebook 04) needs a reward model, a value model, sampling in the loop and a handful of sensitive
# hyperparameters. **Direct Preference Optimization** (Rafailov et al. 2023) reaches the optimum of the same
# KL-regularised objective with a classification loss on the preference pairs themselves: no reward model, no
# sampling while training, one extra frozen model (the reference).
#
# This notebook derives the loss, trains it with the live dashboard, computes DPO's **implicit reward**
# $\hat r(x, y) = \beta \log \frac{\pi_\theta(y \mid x)}{\pi_\text{ref}(y \mid x)}$ by hand and tests it as a reward
# model on held-out pairs, then compares four variants of the loss (**sigmoid** = DPO, **IPO**, **hinge** = SLiC,
# **robust** DPO) trained on the same preferences with the same budget.

# %% tags=["parameters"]
MODEL = "tiny"  # used only when the SFT run below is missing and must be rebuilt; or a Hub id / folder
TASK = "reviews"
OUT = "runs/notebooks/05_dpo"  # run directories; relative paths are relative to the project folder
SFT_RUN = "runs/notebooks/01_sft/sft"  # notebook 01's SFT run; rebuilt into OUT/sft when missing
PREFERENCES = "runs/notebooks/02_preferences/preferences.jsonl"  # notebook 02's export; simulated when missing
DEVICE = None  # None = CUDA when present, else CPU
SEED = 0
THREADS = None  # torch CPU threads; None = 1 for the embedded default on a CPU (its matrices are too small
# to gain from a second thread, and one competing with any other busy process made
# training steps several times slower here), else torch's own default
LORA_R = None  # None = train all weights; a rank (e.g. 16) trains LoRA adapters (reference = adapter off)
SFT_STEPS = 200  # only when the SFT model must be rebuilt
N_LABEL_PROMPTS = 256  # only when the preferences must be rebuilt: prompts x 4 candidates, simulated annotator
FLIP_RATE = 0.1  # only when the preferences must be rebuilt
BETA = 0.1  # DPO's beta: strength of the pull towards the reference (IPO's tau)
LOSS_TYPES = ["sigmoid", "ipo", "hinge", "robust"]  # the first one trains with the dashboard in section 4
DPO_STEPS = 40  # optimizer steps per variant (batch 32 pairs)
BATCH_SIZE = 32
LEARNING_RATE = 5e-4  # suits the 1M-parameter default; real models want 5e-7 to 5e-6
N_HELDOUT_PAIRS = 200  # preference pairs (whole prompts) held out of training to test the implicit reward
N_EVAL_PROMPTS = 64  # held-out prompts for the evaluation of the trained policies
MAX_NEW_TOKENS = 64  # longest sampled answer in the evaluation

# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"     # with SFT_RUN / PREFERENCES from notebooks 01 / 02 on the same model
# DEVICE = "cuda"
# LORA_R = 16
# LEARNING_RATE = 5e-6
# DPO_STEPS, BATCH_SIZE = 300, 32
# N_HELDOUT_PAIRS, N_EVAL_PROMPTS, MAX_NEW_TOKENS = 500, 128, 256

# %% [markdown]
# ## 1. Set-up

# %%
import math
import random
import time
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import Markdown, display
from plotly.subplots import make_subplots

from rlhfkit.compare import gold_vs_kl_figure
from rlhfkit.data import load_preferences
from rlhfkit.evaluation import EvalSettings, evaluate_policies, response_logprobs
from rlhfkit.judges import SimulatedAnnotator
from rlhfkit.live import Dashboard, from_run
from rlhfkit.models import LoraSettings, load_policy, load_reference, load_tokenizer
from rlhfkit.notebook import project_path, setup, sft_run_or_train
from rlhfkit.sampling import SamplingSettings, candidate_pairs, sample_candidates
from rlhfkit.train.dpo import DPOSettings, train_dpo
from rlhfkit.train.sft import SFTSettings

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # transformers' notice, not ours
notebook_started = time.perf_counter()
# Relative paths are taken from the project folder (the parent of notebooks/).
out_dir, device, task, gold = setup(
    OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL, purpose="this notebook measures every policy against one"
)
lora = LoraSettings(r=LORA_R, alpha=2 * LORA_R) if LORA_R else None

# %% [markdown]
# ## 2. The SFT model and the preferences
#
# DPO starts from the SFT model, which is also its reference $\pi_\text{ref}$, and trains on notebook 02's
# exported preference pairs (TRL's format: `prompt`, `chosen`, `rejected`). Whatever is missing is rebuilt here,
# and the notebook says so. We hold out whole prompts' worth of pairs (`N_HELDOUT_PAIRS`): section 5 tests the
# implicit reward on pairs the policy never trained on.

# %%
sft_run = sft_run_or_train(
    SFT_RUN,
    out_dir,
    model=MODEL,
    task=task,
    settings=SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, lora=lora, n_samples=0),
)
sft_path = str(sft_run.model_path)
tokenizer = load_tokenizer(sft_path)

prefs_path = project_path(PREFERENCES)
if prefs_path.exists():
    prefs = load_preferences(prefs_path).dataset.to_pandas()
    source = f"notebook 02's export ({prefs_path})"
else:
    policy = load_policy(sft_path, device=DEVICE)
    table = sample_candidates(
        policy, tokenizer, task.train_prompts[:N_LABEL_PROMPTS], SamplingSettings(k=4, seed=SEED), progress=False
    )
    pairs = candidate_pairs(table[table.response.str.strip() != ""], seed=SEED)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*identical.*")
        prefs = pd.DataFrame(
            SimulatedAnnotator(gold, noise="flip", flip_rate=FLIP_RATE, seed=SEED).label_pairs(
                [p["prompt"] for p in pairs], [p["response_a"] for p in pairs], [p["response_b"] for p in pairs]
            )
        )
    source = (
        f"a simulated annotator (gold judge, {FLIP_RATE:.0%} flips) over SFT candidates, since {prefs_path} is missing"
    )
    del policy
prefs = prefs[["prompt", "chosen", "rejected"]]

prompts = list(dict.fromkeys(prefs.prompt))
random.Random(SEED).shuffle(prompts)
heldout_prompts, n = set(), 0
for p in prompts:
    if n >= N_HELDOUT_PAIRS:
        break
    heldout_prompts.add(p)
    n += int((prefs.prompt == p).sum())
heldout = prefs[prefs.prompt.isin(heldout_prompts)].reset_index(drop=True)
train_pairs = prefs[~prefs.prompt.isin(heldout_prompts)].reset_index(drop=True)
heldout["gold_chosen"] = gold(heldout.prompt.tolist(), heldout.chosen.tolist())
heldout["gold_rejected"] = gold(heldout.prompt.tolist(), heldout.rejected.tolist())
label_gold = (heldout.gold_chosen > heldout.gold_rejected)[heldout.gold_chosen != heldout.gold_rejected].mean()
print(f"{len(prefs)} preference pairs from {source}")
print(
    f"training on {len(train_pairs)}, holding out {len(heldout)} pairs of {len(heldout_prompts)} prompts; "
    f"the held-out labels agree with the gold judge on {label_gold:.1%} of the pairs gold does not tie"
)

# %% [markdown]
# ## 3. From the RLHF objective to the DPO loss
#
# The KL-regularised objective of notebook 04,
# $\max_\pi \mathbb{E}[r(x, y)] - \beta\,\mathrm{KL}(\pi \| \pi_\text{ref})$, has a closed-form optimum for any
# reward $r$:
#
# $$\pi^*(y \mid x) = \frac{1}{Z(x)}\, \pi_\text{ref}(y \mid x) \exp\!\big(r(x, y) / \beta\big)
#   \quad\Longleftrightarrow\quad
#   r(x, y) = \beta \log \frac{\pi^*(y \mid x)}{\pi_\text{ref}(y \mid x)} + \beta \log Z(x).$$
#
# Put that reward into the Bradley-Terry model of preferences: the intractable $\beta \log Z(x)$ is the same for
# both answers to a prompt and cancels. What is left is a loss on the policy alone, over pairs $(x, y_w, y_l)$ of
# preferred and dispreferred answers:
#
# $$\mathcal{L}_\text{DPO}(\theta) = -\,\mathbb{E}\Big[\log \sigma\Big(
#   \beta \log \frac{\pi_\theta(y_w \mid x)}{\pi_\text{ref}(y_w \mid x)}
#   - \beta \log \frac{\pi_\theta(y_l \mid x)}{\pi_\text{ref}(y_l \mid x)}\Big)\Big]$$
#
# The policy **is** a reward model: its **implicit reward** is
# $\hat r_\theta(x, y) = \beta \log \frac{\pi_\theta(y \mid x)}{\pi_\text{ref}(y \mid x)}$ (log-probabilities summed
# over the answer's tokens), and the loss is the reward model's pairwise loss of notebook 03 written in it. At step 0
# the policy is the reference, every implicit reward is 0, and the loss is $\ln 2 \approx 0.693$. The gradient
# weights each pair by $\sigma(\hat r_l - \hat r_w)$: pairs the implicit reward orders wrongly teach the most.
# $\beta$ plays the role of the KL coefficient: a small $\beta$ lets the policy move far from the reference.

# %% [markdown]
# ## 4. Training DPO with the live dashboard
#
# `train_dpo` wraps TRL's `DPOTrainer`; `Dashboard()` is a TRL callback here. It draws TRL's metrics as they are
# logged: `loss`, `rewards/chosen` and `rewards/rejected` (mean implicit reward of the batch's chosen and rejected
# answers), `rewards/margins` (their difference) and `rewards/accuracies` (how often the chosen answer's implicit
# reward is the higher one). DPO samples nothing while it trains; the run directory gets the policy's answers to a
# few held-out prompts before and after. Headless, the dashboard writes `dashboard.html` into the run directory.


# %%
def dpo(loss_type, callbacks=()):
    run = train_dpo(
        sft_path,
        train_pairs.to_dict("records"),
        DPOSettings(
            loss_type=loss_type,
            beta=BETA,
            max_steps=DPO_STEPS,
            batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE,
            seed=SEED,
            device=DEVICE,
            lora=lora,
            n_samples=8,
            sample_max_new_tokens=MAX_NEW_TOKENS,
        ),
        out_dir / f"dpo_{loss_type}",
        reference=sft_path,
        task=task,
        callbacks=callbacks,
    )
    print(f"{loss_type}: {run.summary['steps']} steps in {run.summary['seconds']:.0f} s")
    return run


runs = {LOSS_TYPES[0]: dpo(LOSS_TYPES[0], callbacks=[Dashboard(title=f"DPO ({LOSS_TYPES[0]}), beta {BETA:g}")])}

# %%
main = runs[LOSS_TYPES[0]]
metrics = main.metrics.dropna(subset=["loss"])
cols = ["step", "loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"]
display(metrics[[c for c in cols if c in metrics]].iloc[sorted({0, len(metrics) // 2, len(metrics) - 1})].round(4))
first_loss, first_step = float(metrics["loss"].iloc[0]), int(metrics["step"].iloc[0])
print(
    f"first logged loss {first_loss:.4f} at step {first_step} (ln 2 = {math.log(2):.4f}; "
    + (
        "the sigmoid loss is exactly ln 2 while the policy equals the reference)"
        if LOSS_TYPES[0] == "sigmoid"
        else f"the {LOSS_TYPES[0]} loss has its own value at step 0, see section 6)"
    )
)

# %% [markdown]
# ## 5. The implicit reward, computed by hand
#
# We compute $\hat r(x, y) = \beta\,[\log \pi_\theta(y \mid x) - \log \pi_\text{ref}(y \mid x)]$ ourselves for every
# held-out pair: the answer's log-probability summed over its tokens (the end-of-turn token included, as DPO
# trained on it) under the trained policy and under the SFT reference. Then we use it as a reward model: does it
# rank the held-out pairs as the annotator did, and as the gold judge does?

# %%
reference = load_reference(sft_path, device=DEVICE)


def sequence_logprobs(model, prompts, responses):
    per_token = response_logprobs(model, tokenizer, prompts, responses, [True] * len(responses), batch_size=32)
    return np.array([float(t.sum()) for t in per_token])


ho_prompts = heldout.prompt.tolist()
ref_chosen = sequence_logprobs(reference, ho_prompts, heldout.chosen.tolist())
ref_rejected = sequence_logprobs(reference, ho_prompts, heldout.rejected.tolist())


def implicit_rewards(run):
    model = load_policy(run.model_path, device=DEVICE)
    model.eval()
    chosen = BETA * (sequence_logprobs(model, ho_prompts, heldout.chosen.tolist()) - ref_chosen)
    rejected = BETA * (sequence_logprobs(model, ho_prompts, heldout.rejected.tolist()) - ref_rejected)
    return chosen, rejected


def implicit_accuracy(chosen, rejected):
    decided = (heldout.gold_chosen != heldout.gold_rejected).to_numpy()
    gold_chosen_wins = (heldout.gold_chosen > heldout.gold_rejected).to_numpy()
    return {
        "accuracy vs labels": float(np.mean(chosen > rejected)),
        "accuracy vs gold": float(np.mean((chosen > rejected)[decided] == gold_chosen_wins[decided])),
        "mean margin": float(np.mean(chosen - rejected)),
    }


r_chosen, r_rejected = implicit_rewards(main)
hand = implicit_accuracy(r_chosen, r_rejected)
logged = metrics.iloc[-1]
print(
    f"held-out pairs: implicit reward ranks {hand['accuracy vs labels']:.1%} as the annotator labelled them and "
    f"{hand['accuracy vs gold']:.1%} as the gold judge does; mean margin {hand['mean margin']:+.3f}"
)
print(
    f"TRL's last logged training batch: rewards/accuracies {logged.get('rewards/accuracies', float('nan')):.3f}, "
    f"rewards/margins {logged.get('rewards/margins', float('nan')):+.3f} (training pairs, same formula)"
)

example = heldout.assign(r_chosen=r_chosen, r_rejected=r_rejected).head(5)
with pd.option_context("display.max_colwidth", 90):
    display(
        example[["prompt", "chosen", "rejected", "r_chosen", "r_rejected", "gold_chosen", "gold_rejected"]].round(3)
    )

answers = pd.DataFrame(
    {
        "implicit reward": np.concatenate([r_chosen, r_rejected]),
        "gold": np.concatenate([heldout.gold_chosen, heldout.gold_rejected]),
    }
)
rank_corr = answers["implicit reward"].rank().corr(answers.gold.rank())  # Spearman: Pearson on ranks
fig = make_subplots(
    rows=1,
    cols=2,
    subplot_titles=(
        "implicit reward: chosen vs rejected (held-out)",
        f"implicit reward against gold (Spearman {rank_corr:.2f})",
    ),
)
fig.add_trace(go.Histogram(x=r_chosen, name="chosen", opacity=0.6, nbinsx=30), row=1, col=1)
fig.add_trace(go.Histogram(x=r_rejected, name="rejected", opacity=0.6, nbinsx=30), row=1, col=1)
fig.add_trace(
    go.Scatter(
        x=answers.gold, y=answers["implicit reward"], mode="markers", showlegend=False, marker=dict(size=4, opacity=0.5)
    ),
    row=1,
    col=2,
)
fig.update_layout(barmode="overlay", height=340, margin=dict(t=40, b=40, l=40, r=10))
fig.update_xaxes(title_text="beta * log(pi / pi_ref)", row=1, col=1)
fig.update_xaxes(title_text="gold score", row=1, col=2)
fig.show()

# %% [markdown]
# ## 6. Variants of the loss
#
# With the implicit reward margin of a pair,
# $h = \beta \log \frac{\pi_\theta(y_w)}{\pi_\text{ref}(y_w)} - \beta \log \frac{\pi_\theta(y_l)}{\pi_\text{ref}(y_l)}$
# (TRL's `loss_type` names):
#
# | loss | per pair | idea | at step 0 |
# | --- | --- | --- | --- |
# | `sigmoid` (DPO) | $-\log \sigma(h)$ | Bradley-Terry likelihood | $\ln 2$ |
# | `ipo` (Azar et al. 2023) | $\big(\bar h / \beta - \tfrac{1}{2\beta}\big)^2$, $\bar h$ per token | regress the margin to a fixed target instead of pushing it to infinity: DPO can over-fit deterministic preferences | $1/(4\beta^2)$ |
# | `hinge` (SLiC, Zhao et al. 2023) | $\max(0,\, 1 - h)$ | stop pushing once the margin is 1 | 1 |
# | `robust` (Chowdhury et al. 2024) | $\frac{(1-\varepsilon)(-\log\sigma(h)) + \varepsilon \log\sigma(-h)}{1 - 2\varepsilon}$ | unbiased under labels flipped with probability $\varepsilon$ (0.1 here, the simulated annotator's flip rate) | $\ln 2$ |
#
# Same pairs, same β, same steps and seed; only the loss differs. The dashboard below overlays all of them, read
# from their run directories.

# %%
for loss_type in LOSS_TYPES[1:]:
    runs[loss_type] = dpo(loss_type)
from_run([run.path for run in runs.values()], title=f"DPO variants, beta {BETA:g}")

# %% [markdown]
# Every variant, and the SFT model, answers `N_EVAL_PROMPTS` held-out prompts at temperature 1: gold reward (with
# a bootstrap 95% interval over prompts), KL to SFT (k1 on the policy's own samples), the gold win rate against
# SFT, length and EOS rate. Beside them, each variant's implicit reward tested on the held-out pairs.

# %%
evaluation = evaluate_policies(
    {f"dpo-{name}": run for name, run in runs.items()},
    task,
    reference=sft_path,
    reference_name="sft",
    progress=False,
    settings=EvalSettings(n_prompts=N_EVAL_PROMPTS, max_new_tokens=MAX_NEW_TOKENS, seed=SEED, device=DEVICE),
)
table = evaluation.summary.set_index("policy")[
    [
        "gold_reward_mean",
        "gold_reward_ci_lo",
        "gold_reward_ci_hi",
        "kl_to_ref",
        "win_rate_vs_ref",
        "win_rate_ci_lo",
        "win_rate_ci_hi",
        "mean_length",
        "eos_rate",
        "distinct_2",
    ]
]
implicit = {f"dpo-{LOSS_TYPES[0]}": hand}
for name in LOSS_TYPES[1:]:
    implicit[f"dpo-{name}"] = implicit_accuracy(*implicit_rewards(runs[name]))
implicit = pd.DataFrame(implicit).T.add_prefix("implicit ")
table = table.join(implicit)
display(table.round(3))
gold_vs_kl_figure(evaluation.to_dict()).show()

# %% [markdown]
# ## 7. What this run says
#
# Computed from this run's numbers.

# %%
sft_row = table.loc["sft"]
variants = [f"dpo-{name}" for name in LOSS_TYPES]
best = max(variants, key=lambda v: table.loc[v, "gold_reward_mean"])
lines = [
    f"- **Implicit reward.** After {main.summary['steps']} steps of {LOSS_TYPES[0]} DPO, "
    f"$\\beta \\log \\pi/\\pi_\\text{{ref}}$ ranks {hand['accuracy vs labels']:.1%} of {len(heldout)} held-out pairs "
    f"as the annotator did and {hand['accuracy vs gold']:.1%} as the gold judge does (the labels themselves agree "
    f"with gold on {label_gold:.1%}): "
    + (
        "the policy learned a usable reward model without ever training one."
        if hand["accuracy vs gold"] >= 0.65
        else "better than chance, but a weak reward model."
        if hand["accuracy vs gold"] > 0.55
        else "no better than chance on held-out pairs at this budget."
    ),
]
for v in variants:
    r = table.loc[v]
    verdict = (
        "beats SFT"
        if r.win_rate_ci_lo > 0.5
        else "worse than SFT"
        if r.win_rate_ci_hi < 0.5
        else "not distinguishable from SFT"
    )
    lines.append(
        f"- **{v}**: gold {r.gold_reward_mean:.3f} [{r.gold_reward_ci_lo:.3f}, {r.gold_reward_ci_hi:.3f}] "
        f"vs SFT {sft_row.gold_reward_mean:.3f}, win rate {r.win_rate_vs_ref:.2f} "
        f"[{r.win_rate_ci_lo:.2f}, {r.win_rate_ci_hi:.2f}] ({verdict}), KL {r.kl_to_ref:.1f} nats, "
        f"{r.mean_length:.0f} tokens, EOS rate {r.eos_rate:.2f}."
    )
others = [v for v in variants if v != best]
per_nat = {
    v: (table.loc[v, "gold_reward_mean"] - sft_row.gold_reward_mean) / max(table.loc[v, "kl_to_ref"], 1e-9)
    for v in variants
}
overlapping = [v for v in others if table.loc[v, "gold_reward_ci_hi"] >= table.loc[best, "gold_reward_ci_lo"]]
if others:
    lines.append(
        f"- **Which loss?** {best} has the highest gold reward; "
        + (
            f"its interval overlaps those of {', '.join(overlapping)}, so on this budget the data do not separate them."
            if overlapping
            else "its interval is above every other variant's."
        )
        + f" It sits at {table.loc[best, 'kl_to_ref']:.1f} nats of KL, the others at "
        f"{min(table.loc[v, 'kl_to_ref'] for v in others):.1f}-"
        f"{max(table.loc[v, 'kl_to_ref'] for v in others):.1f}: gold per nat is "
        + ", ".join(f"{v} {per_nat[v]:.3f}" for v in variants)
        + ". A higher reward bought with much more drift is not the better trade (notebook 06 compares "
        "methods at matched KL)."
    )
longer = [v for v in variants if table.loc[v, "mean_length"] > 1.2 * sft_row.mean_length]
if longer:
    lines.append(
        f"- **Length.** {', '.join(longer)} answer at least 20% longer than SFT ({sft_row.mean_length:.0f} "
        f"tokens, EOS rate {sft_row.eos_rate:.2f}): on this task more positive sentences also raise the gold "
        f"judge, so part of the gain may be length, and answers cut at {MAX_NEW_TOKENS} tokens never ended."
    )
lines.append(
    f"- One seed, {DPO_STEPS} steps, {N_EVAL_PROMPTS} evaluation prompts. This notebook took "
    f"{time.perf_counter() - notebook_started:.0f} s."
)
display(Markdown("\n".join(lines)))
