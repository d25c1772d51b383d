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
SEED = 0
THREADS = None  # torch CPU threads; None = 1 for the embedded default on a CPU (its matrices are too small
# to gain from a second thread, and one competing with any other busy process made
# training steps several times slower here), else torch's own default
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

# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"     # with SFT_RUN pointing at notebook 01's run of the same model
# DEVICE = "cuda"
# LORA_R = 16
# LEARNING_RATE = 1e-4
# N_PROMPTS, K, N_CHECK_PROMPTS = 2048, 4, 128

# %% [markdown]
# ## 1. Set-up

# %%
import math
import warnings
from dataclasses import replace

import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from plotly.subplots import make_subplots

from rlhfkit.judges import SimulatedAnnotator
from rlhfkit.models import LoraSettings, load_policy, load_tokenizer
from rlhfkit.notebook import project_path, setup, sft_run_or_train
from rlhfkit.sampling import SamplingSettings, candidate_pairs, sample_candidates
from rlhfkit.train.reward import RewardModelJudge, RewardSettings, pairwise_accuracy, train_reward_model
from rlhfkit.train.sft import SFTSettings

# Relative paths are taken from the project folder (the parent of notebooks/).
out_dir, device, task, gold = setup(
    OUT,
    TASK,
    device=DEVICE,
    threads=THREADS,
    model=MODEL,
    purpose="this notebook measures the reward model against one",
)
lora = LoraSettings(r=LORA_R, alpha=2 * LORA_R) if LORA_R else None

# %% [markdown]
# ## 2. The SFT model
#
# The RM starts from the SFT model (its understanding of the text is useful), and the pairs it learns from are the
# SFT model's own answers: the RM must judge the distribution PPO will start from. Notebook 01 saved one; if it is
# not there, we train one now.

# %%
sft_run = sft_run_or_train(
    SFT_RUN,
    out_dir,
    model=MODEL,
    task=task,
    settings=SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, lora=lora, n_samples=0),
)
sft_path = sft_run.model_path
policy, tokenizer = load_policy(sft_path, device=DEVICE), load_tokenizer(sft_path)

# %% [markdown]
# ## 3. The pairwise loss, numerically
#
# With margin $m = r_c - r_r$, the loss is $-\log\sigma(m) = \log(1 + e^{-m})$. At $m = 0$, when the model cannot
# tell the two apart (as a freshly initialised score head cannot), it is exactly $\ln 2 \approx 0.693$. It falls
# below $\ln 2$ only when the chosen answer scores higher, and its gradient $-\sigma(-m)$ fades as the margin grows:
# confident, correct pairs stop teaching, and wrongly ordered ones teach the most.

# %%
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
#
# A separate **check set** answers a different question: does the RM rank answers the way the gold judge does? It
# uses held-out prompts (items never seen in training), all pairs of `K` candidates each, labelled by the gold judge
# without noise; pairs the gold judge scores equally are dropped.


# %%
def sample_pairs(prompts, seed):
    table = sample_candidates(
        policy,
        tokenizer,
        prompts,
        SamplingSettings(k=K, temperature=1.0, max_new_tokens=MAX_NEW_TOKENS, seed=seed),
        progress=False,
    )
    table = table[table.response.str.strip() != ""]
    return candidate_pairs(table, seed=seed)


def label(pairs, annotator):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*identical.*")
        return pd.DataFrame(
            annotator.label_pairs(
                [p["prompt"] for p in pairs], [p["response_a"] for p in pairs], [p["response_b"] for p in pairs]
            )
        )


store_rows = []
labels_path = project_path(LABELS)
if labels_path.exists():
    from rlhfkit.labeling import LabelStore

    store_rows, counts = LabelStore(labels_path).to_preferences()
    print(f"label store {labels_path}: {counts}")
if store_rows:
    source = f"the label store {labels_path}"
    prefs = pd.DataFrame(store_rows)[["prompt", "chosen", "rejected", "annotator"]]
    prefs["score_chosen"] = gold(prefs.prompt.tolist(), prefs.chosen.tolist())
    prefs["score_rejected"] = gold(prefs.prompt.tolist(), prefs.rejected.tolist())
    prefs["agrees_with_judge"] = prefs.score_chosen >= prefs.score_rejected
    train_pairs = [{"prompt": r.prompt, "response_a": r.chosen, "response_b": r.rejected} for r in prefs.itertuples()]
else:
    source = f"a simulated annotator (gold judge, {FLIP_RATE:.0%} flips) over SFT candidates"
    print(f"no pairwise labels at {labels_path}: labelling with {source}")
    train_pairs = sample_pairs(task.train_prompts[:N_PROMPTS], SEED)
    prefs = label(train_pairs, SimulatedAnnotator(gold, noise="flip", flip_rate=FLIP_RATE, seed=SEED))

check = label(sample_pairs(task.eval_prompts[:N_CHECK_PROMPTS], SEED + 1), SimulatedAnnotator(gold, noise="none"))
check = check[~check.judge_tie].reset_index(drop=True)
agreement = prefs.agrees_with_judge.mean()
print(f"{len(prefs)} training pairs from {source}; the labels agree with the gold judge on {agreement:.1%}")
print(f"{len(check)} check pairs on {N_CHECK_PROMPTS} held-out prompts")
with pd.option_context("display.max_colwidth", 120):
    display(
        prefs[["prompt", "chosen", "rejected", "score_chosen", "score_rejected", "agrees_with_judge"]]
        .sample(min(5, len(prefs)), random_state=SEED)
        .round(3)
    )

# %% [markdown]
# ## 5. Train the reward model
#
# `train_reward_model` wraps TRL's `RewardTrainer`: the SFT model with a new one-output head, trained on the pairs
# with the loss above. It holds out 10% of the pairs (split by prompt) and reports accuracy on them: agreement with
# the *annotator's* labels, noise included.


# %%
def as_rows(frame):
    return frame[["prompt", "chosen", "rejected"]].to_dict("records")


settings = RewardSettings(max_steps=RM_STEPS, learning_rate=LEARNING_RATE, seed=SEED, device=DEVICE, lora=lora)
rm_run = train_reward_model(sft_path, as_rows(prefs), settings, out_dir / "reward")
rm = RewardModelJudge(rm_run.model_path)
s = rm_run.summary
print(
    f"{s['steps']} steps on {s['n_train_pairs']} pairs in {s['seconds']:.0f} s; accuracy on {s['n_heldout_pairs']} "
    f"held-out annotator labels: {s['heldout_accuracy']:.3f}"
)

# %% [markdown]
# The first logged loss should sit at about $\ln 2$: the new head starts near zero for every answer. The curve
# shows how far below $\ln 2$ the model gets, and the batch accuracy (how often $r_c > r_r$) alongside.

# %%
metrics = rm_run.metrics.dropna(subset=["loss"])
first_loss = float(metrics["loss"].iloc[0])
print(f"first logged loss {first_loss:.4f} vs ln 2 = {math.log(2):.4f}; last {float(metrics['loss'].iloc[-1]):.4f}")
fig = make_subplots(rows=1, cols=2, subplot_titles=("pairwise loss", "batch accuracy (r_c > r_r)"))
fig.add_trace(go.Scatter(x=metrics.step, y=metrics["loss"], mode="lines", name="loss"), row=1, col=1)
fig.add_hline(y=math.log(2), line_dash="dot", annotation_text="ln 2 (zero margin)", row=1, col=1)
if "accuracy" in metrics:
    fig.add_trace(go.Scatter(x=metrics.step, y=metrics["accuracy"], mode="lines", name="accuracy"), row=1, col=2)
fig.update_xaxes(title_text="step")
fig.update_layout(height=340, showlegend=False, margin=dict(t=40, b=40, l=40, r=10))
fig.show()

# %% [markdown]
# ## 6. Accuracy against gold, and the reward distributions
#
# The check pairs were labelled by the gold judge itself. Accuracy there is what matters downstream: PPO will push
# the policy toward whatever the RM scores high, mistakes included. Pairs whose two answers the gold judge scores
# nearly alike are harder; the table splits accuracy by the size of the gold difference.

# %%
prompts = check.prompt.tolist()
check["rm_chosen"] = rm(prompts, check.chosen.tolist())
check["rm_rejected"] = rm(prompts, check.rejected.tolist())
check["correct"] = check.rm_chosen > check.rm_rejected
check["gold_gap"] = check.score_chosen - check.score_rejected
gold_accuracy = pairwise_accuracy(rm, as_rows(check))
check["gap bin"] = pd.qcut(check.gold_gap, q=min(3, check.gold_gap.nunique()), duplicates="drop")
by_gap = (
    check.groupby("gap bin", observed=True)
    .correct.agg(["mean", "size"])
    .rename(columns={"mean": "RM accuracy", "size": "pairs"})
)
print(f"accuracy against gold on {len(check)} held-out pairs: {gold_accuracy:.3f}")
display(by_gap.round(3))

scores = pd.concat(
    [
        pd.DataFrame({"response": check.chosen, "rm": check.rm_chosen, "gold": check.score_chosen}),
        pd.DataFrame({"response": check.rejected, "rm": check.rm_rejected, "gold": check.score_rejected}),
    ]
).drop_duplicates("response")
rank_corr = scores.rm.rank().corr(scores.gold.rank())  # Spearman: the correlation of the ranks
print(f"Spearman correlation of RM reward and gold score over {len(scores)} distinct answers: {rank_corr:.3f}")

fig = make_subplots(
    rows=1, cols=2, subplot_titles=("RM reward: gold-chosen vs gold-rejected", "RM reward against gold score")
)
fig.add_trace(go.Histogram(x=check.rm_chosen, name="chosen", opacity=0.6, nbinsx=30), row=1, col=1)
fig.add_trace(go.Histogram(x=check.rm_rejected, name="rejected", opacity=0.6, nbinsx=30), row=1, col=1)
fig.add_trace(
    go.Scatter(
        x=scores.gold, y=scores.rm, mode="markers", marker=dict(size=5, opacity=0.5), name="answers", showlegend=False
    ),
    row=1,
    col=2,
)
fig.update_layout(barmode="overlay", height=360, margin=dict(t=40, b=40, l=40, r=10))
fig.update_xaxes(title_text="RM reward", row=1, col=1)
fig.update_xaxes(title_text="gold score (VADER)", row=1, col=2)
fig.update_yaxes(title_text="RM reward", row=1, col=2)
fig.show()

# %% [markdown]
# ## 7. How accuracy falls with annotator noise
#
# Real annotators disagree with each other (InstructGPT's labellers agreed with each other about 73% of the time).
# Here we relabel the **same pairs** with more and more flips, train one RM per noise level (`SWEEP_STEPS` steps
# each; section 5's run is the point at `FLIP_RATE` when it was trained on the same pairs and budget), and measure
# each against gold on the same check pairs. With flip rate $p$ the labels themselves agree with gold on about
# $1 - p$ of the pairs; at $p = 0.5$ they carry no information at all.

# %%
sweep = []
if not store_rows and SWEEP_STEPS == RM_STEPS:  # section 5's run is one point of the sweep: reuse it
    sweep.append(
        {
            "flip rate": FLIP_RATE,
            "label agreement with gold": agreement,
            "RM accuracy vs gold": gold_accuracy,
            "steps": s["steps"],
        }
    )
for flip in [f for f in SWEEP_FLIP_RATES if not (sweep and f == FLIP_RATE)]:
    noisy = label(train_pairs, SimulatedAnnotator(gold, noise="flip", flip_rate=flip, seed=SEED))
    run = train_reward_model(
        sft_path,
        as_rows(noisy),
        replace(settings, max_steps=SWEEP_STEPS, n_samples=0),
        out_dir / "sweep" / f"flip_{flip:g}",
    )
    sweep.append(
        {
            "flip rate": flip,
            "label agreement with gold": noisy.agrees_with_judge.mean(),
            "RM accuracy vs gold": pairwise_accuracy(RewardModelJudge(run.model_path), as_rows(check)),
            "steps": run.summary["steps"],
        }
    )
sweep = pd.DataFrame(sweep, columns=["flip rate", "label agreement with gold", "RM accuracy vs gold", "steps"])
sweep = sweep.sort_values("flip rate").reset_index(drop=True)
display(sweep.round(3))
fig = go.Figure()
fig.add_trace(
    go.Scatter(
        x=sweep["flip rate"],
        y=sweep["RM accuracy vs gold"],
        mode="lines+markers",
        name=f"RM accuracy vs gold ({sweep.steps.max()} steps each)",
    )
)
fig.add_trace(
    go.Scatter(
        x=sweep["flip rate"],
        y=sweep["label agreement with gold"],
        mode="lines+markers",
        name="labels' agreement with gold",
        line=dict(dash="dash"),
    )
)
fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
fig.update_layout(
    height=340,
    xaxis_title="annotator flip rate",
    yaxis_title="accuracy on gold-labelled pairs",
    margin=dict(t=30, b=40, l=50, r=10),
)
fig.show()

# %% [markdown]
# ## 8. What this run says
#
# Computed from the numbers above.

# %%
lines = [
    f"- **The loss starts at ln 2.** The first logged loss was {first_loss:.3f} (ln 2 = {math.log(2):.3f}): "
    + (
        "the untrained head gave both answers of a pair about the same reward, as expected."
        if abs(first_loss - math.log(2)) < 0.1
        else "further from ln 2 than expected: the new head's initial scores already differ between answers."
    ),
    f"- **Accuracy.** The RM ranks {gold_accuracy:.1%} of {len(check)} held-out pairs as the gold judge does (chance "
    f"50%), after {s['steps']} steps on {s['n_train_pairs']} pairs whose labels agreed with gold {agreement:.1%} of "
    f"the time. "
    + (
        "It ranks better than its own labels: averaging over many noisy pairs cancels part of the noise. "
        if gold_accuracy > agreement
        else "It has not learned the judge as well as its labels describe it; more pairs or steps may help. "
    )
    + (
        "A good proxy on these pairs."
        if gold_accuracy >= 0.85
        else "A usable but noisy proxy: PPO will optimise its mistakes along with its signal."
        if gold_accuracy >= 0.7
        else "A weak proxy: PPO will optimise its mistakes as eagerly as its insights."
        if gold_accuracy >= 0.6
        else "Little better than chance: do not optimise a policy against it."
    ),
]
if len(by_gap) > 1:
    lines.append(
        f"- **Hard pairs.** Accuracy is {by_gap['RM accuracy'].iloc[0]:.1%} on the third of pairs with the "
        f"smallest gold difference and {by_gap['RM accuracy'].iloc[-1]:.1%} on the third with the largest."
    )
lines.append(
    f"- **Rewards vs gold.** Spearman correlation {rank_corr:.2f} over {len(scores)} answers; mean RM reward "
    f"{check.rm_chosen.mean():+.2f} for gold-chosen and {check.rm_rejected.mean():+.2f} for gold-rejected "
    f"answers."
)
if len(sweep) > 1:
    acc, agree_ = sweep["RM accuracy vs gold"].tolist(), sweep["label agreement with gold"].tolist()
    flips = sweep["flip rate"].tolist()
    drop, label_drop = acc[0] - acc[-1], agree_[0] - agree_[-1]
    se = 100 * math.sqrt(0.25 / len(check))  # standard error near 50%, in points (a lower bound: pairs share prompts)
    text = (
        f"- **Noise.** From flip rate {flips[0]:g} to {flips[-1]:g}, accuracy against gold went from {acc[0]:.1%} "
        f"to {acc[-1]:.1%} ({100 * drop:.1f} points lost) while the labels' own agreement with gold fell from "
        f"{agree_[0]:.1%} to {agree_[-1]:.1%}. "
        + (
            "The sweep shows no clear decline. "
            if drop < 0.02
            else "Noise costs the RM accuracy, but less than it costs the labels. "
            if drop < label_drop
            else "Noise costs the RM as much accuracy as it costs the labels, or more. "
        )
    )
    bumps = [(flips[i], flips[i + 1]) for i in range(len(acc) - 1) if acc[i + 1] > acc[i] + 0.01]
    if bumps:
        a, b = bumps[0]
        text += (
            f"The curve is not monotone (higher at {b:g} than at {a:g}): each point is one training run, and "
            f"on {len(check)} check pairs one accuracy has a standard error of at least {se:.1f} points. "
        )
    if 0.5 in flips:
        z = abs(acc[flips.index(0.5)] - 0.5) * 100 / se
        text += (
            f"At flip rate 0.5 the labels carry no information, and the RM's {acc[flips.index(0.5)]:.1%} is "
            f"{z:.1f} of those standard errors from chance"
            + (
                ": the check pairs share prompts and answers, so the real uncertainty is larger; rerun with "
                "another SEED before reading anything into it."
                if z >= 2
                else "."
            )
        )
    lines.append(text)
lines.append("- Next: PPO against this reward model, and what happens when it is optimised too hard (04).")
display(Markdown("\n".join(lines)))
