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
# # 08 · Rounds of RLHF, and judging on several criteria
#
# Notebooks 02-06 label once, from the SFT model, then train. Practice iterates: InstructGPT collected comparisons
# on successive policies, Llama 2 ran five rounds, Anthropic's "online" HH model was retrained weekly on labels of
# its own latest samples. The reason is measurable. A reward model learns from the answers it was shown; as PPO
# moves the policy, the policy writes answers unlike those, the reward model is less right about them, and PPO
# pushes exactly where it is wrong (**over-optimisation**). A round therefore:
#
# 1. samples candidates from the **current** policy on new prompts and puts pairs of them in the label store;
# 2. gets them labelled: by you in the widget, or by a simulated annotator when nobody is there;
# 3. retrains the reward model on **every** round's labels so far;
# 4. continues PPO from the current policy, with the KL penalty still to the SFT model.
#
# People also rarely judge on one axis: "helpful" and "harmless" disagree, and so do "positive" and "brief" in the
# reviews task (a longer review has room for more praise). The second half trains **a reward model per criterion**
# and PPO against their weighted sum, and draws the **frontier** of the two gold criteria as the weight moves.
#
# **Run it:** *Run ▸ Run All Cells* (a few minutes on a CPU). With `LABEL_MYSELF = True` the rounds stop after
# sampling and wait for you: label round r's pairs in the widget, then run the cell after it, and round r trains.

# %% tags=["parameters"]
MODEL = "tiny"  # used only when the SFT run below is missing and must be rebuilt; or a Hub id / folder
TASK = "reviews"
OUT = "runs/notebooks/08_rounds_and_criteria"  # run directories (finished steps are reused)
SFT_RUN = "runs/notebooks/01_sft/sft"  # notebook 01's SFT run; rebuilt into OUT/sft when missing
DEVICE = None  # None = CUDA when present, else CPU
SEED = 0
THREADS = None  # torch CPU threads; None = rlhfkit.threads' rule (1 for the embedded default on a CPU)
SFT_STEPS = 200  # only when the SFT model must be rebuilt
LABEL_MYSELF = False  # True: each round waits for your labels in the widget (ANNOTATOR); False: a simulated one
ANNOTATOR = "me"
ROUNDS = 3
PROMPTS_PER_ROUND = 64  # new train prompts labelled each round (K candidates, at most PAIRS_PER_PROMPT pairs)
K = 4
PAIRS_PER_PROMPT = 4
RM_STEPS = -1  # reward model steps per round; -1 = one pass over every label so far
PPO_STEPS = 6  # PPO rollouts (of BATCH_SIZE answers) per round
BATCH_SIZE = 32
MAX_NEW_TOKENS = 48
N_CHECK_PROMPTS = 48  # held-out prompts whose gold-labelled pairs test each reward model
N_EVAL_PROMPTS = 64
BRIEF_WEIGHTS = [0.0, 0.5, 1.0]  # the frontier: PPO against (1 - w) * positive + w * brief, one run per w
CRITERIA_PROMPTS = 96  # train prompts whose pairs are labelled on both criteria
CRITERIA_PPO_STEPS = 12

# %%
from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)

# %% [markdown]
# ## 1. The SFT model
#
# Every round starts where the previous one stopped, but the **reference** of the KL penalty stays the SFT model
# (notebook 01's, rebuilt here when missing).

# %%
import time

import pandas as pd
from IPython.display import display

from rlhfkit.evaluation import EvalSettings
from rlhfkit.notebook import sft_run_or_train
from rlhfkit.train.ppo import PPOSettings
from rlhfkit.train.reward import RewardSettings
from rlhfkit.train.sft import SFTSettings

notebook_started = time.perf_counter()
sft_settings = SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, n_samples=0)
sft_path = str(sft_run_or_train(SFT_RUN, out_dir, model=MODEL, task=task, settings=sft_settings).model_path)

# %% [markdown]
# ## 2. Rounds
#
# `run_rounds` runs every round that is not finished yet and reads the finished ones back, so this cell is safe to
# run again: after a kernel restart, after labelling, or with a larger `ROUNDS`. Each round is a folder
# `OUT/rounds/round-<r>/`; its labels live in one SQLite store, `OUT/rounds/labels.sqlite`, tagged with the round.

# %%
from rlhfkit.rounds import PEOPLE, RoundSettings, run_rounds

round_settings = RoundSettings(
    rounds=ROUNDS,
    prompts_per_round=PROMPTS_PER_ROUND,
    k=K,
    max_pairs_per_prompt=PAIRS_PER_PROMPT,
    max_new_tokens=MAX_NEW_TOKENS,
    n_check_prompts=N_CHECK_PROMPTS,
    reward=RewardSettings(max_steps=RM_STEPS, device=DEVICE, n_samples=0),
    ppo=PPOSettings(
        total_steps=PPO_STEPS, batch_size=BATCH_SIZE, max_new_tokens=MAX_NEW_TOKENS, device=DEVICE, progress=False
    ),
    evaluation=EvalSettings(n_prompts=N_EVAL_PROMPTS, max_new_tokens=MAX_NEW_TOKENS, device=DEVICE),
    seed=SEED,
)
who = dict(labeller=PEOPLE, annotator=ANNOTATOR) if LABEL_MYSELF else {}
rounds = run_rounds(sft_path, task, round_settings, out_dir / "rounds", **who)
if rounds.waiting:
    print(f"round {rounds.waiting['round']}: {rounds.waiting['pending']} pairs wait for you in the widget below")
rounds.table().round(3)

# %% [markdown]
# **Your labels.** With `LABEL_MYSELF = True` the widget shows the round's pairs (keys 1 / 2 / 3 / 4, s, z; see
# notebook 02). Every decision is committed to the store at once; run the rounds cell again when the counter says
# all are done, and the round trains. Headless, or with a simulated annotator, there is nothing to label.

# %%
from rlhfkit.labeling import PairwiseLabeler

PairwiseLabeler(rounds.store, ANNOTATOR) if LABEL_MYSELF else None

# %% [markdown]
# Labelled them? Run the next cell: the waiting round trains, and the loop stops again at the following round's
# pairs (the widget above then shows those). Without anything to wait for it only reads the finished rounds back.

# %%
rounds = run_rounds(sft_path, task, round_settings, out_dir / "rounds", **who)
print(f"waiting: {rounds.waiting}" if rounds.waiting else f"all {len(rounds.rounds)} rounds done")

# %% [markdown]
# ## 3. What the rounds changed
#
# Read the table above, round by round:
#
# - **rm_accuracy_before / after**: the reward model's accuracy against gold on pairs of the *current* policy's
#   samples (held-out prompts), before this round's retraining (last round's model) and after. When "before" is
#   below "after", the old reward model had fallen behind the policy, and the new labels caught it up.
# - **gold / proxy reward, KL**: the policy after the round's PPO, on held-out prompts (KL to the SFT model).
# - **over-optimisation gap**: the policy's percentile among the SFT model's samples by the reward model minus its
#   percentile by gold; above 0, the reward model believes in more progress than gold sees.
#
# `bench/rounds.py` compares three rounds with one round of the same labels and PPO steps over several seeds; the
# README gives what it measured.

# %%
from rlhfkit.rounds import rounds_figure

if rounds.rounds:
    table = rounds.table().to_dict("records")
    one_seed = {"rounds": [{k: {"mean": v} for k, v in row.items() if isinstance(v, float)} for row in table]}
    display(rounds_figure(one_seed, title="What each round changed (one seed)"))

# %% [markdown]
# ## 4. Several criteria: one reward model each, PPO against their weighted sum
#
# The reviews task has two gold criteria besides its overall judge: **positive** (VADER) and **brief** (minus the
# word count). A simulated annotator per criterion labels the same pairs twice, once per criterion, into one store
# (in the widget: `PairwiseLabeler(store, ANNOTATOR, criteria=["positive", "brief"])` asks both, then an overall
# choice). How often do the two criteria disagree on a pair?

# %%
from rlhfkit.judges import SimulatedAnnotator
from rlhfkit.labeling import LabelStore, annotate_with_judge
from rlhfkit.sampling import SamplingSettings, candidate_pairs

criteria_dir = out_dir / "criteria"
criteria_dir.mkdir(parents=True, exist_ok=True)
store = LabelStore(criteria_dir / "labels.sqlite")
if store.count("pair") == 0:
    sampling = SamplingSettings(k=K, seed=SEED, max_new_tokens=MAX_NEW_TOKENS)
    table = stages.candidates(sft_path, task.train_prompts[:CRITERIA_PROMPTS], sampling, progress=False)
    store.add_pairs(candidate_pairs(table, PAIRS_PER_PROMPT, seed=SEED))
for criterion in ("positive", "brief"):
    annotator = SimulatedAnnotator(task.gold_for(criterion), noise="flip", flip_rate=0.1, seed=SEED)
    annotate_with_judge(store, annotator, "sim", criterion=criterion, seed=SEED, progress=False)
chosen = {c: {r["item_id"]: r["chosen"] for r in store.to_preferences(criterion=c)[0]} for c in ("positive", "brief")}
both = set(chosen["positive"]) & set(chosen["brief"])
disagree = sum(chosen["positive"][i] != chosen["brief"][i] for i in both)
print(f"{store.count('pair')} pairs; 'positive' and 'brief' chose differently on {disagree} of {len(both)}")

# %% [markdown]
# **The frontier.** `criteria_frontier` trains a reward model per criterion, standardises each on the SFT model's
# own samples (their scales are unrelated: a Bradley-Terry score is defined up to a shift and a scale), and runs
# PPO from the SFT model once per weighting, then scores every policy with **both** gold judges on held-out
# prompts. Moving the weight from "positive" to "brief" should trade one for the other.

# %%
from rlhfkit.criteria import CriteriaSettings, criteria_frontier

criteria_settings = CriteriaSettings(
    weights=[{"positive": 1.0 - w, "brief": w} for w in BRIEF_WEIGHTS],
    reward=RewardSettings(max_steps=RM_STEPS, device=DEVICE, n_samples=0),
    ppo=PPOSettings(
        total_steps=CRITERIA_PPO_STEPS,
        batch_size=BATCH_SIZE,
        max_new_tokens=MAX_NEW_TOKENS,
        device=DEVICE,
        progress=False,
    ),
    evaluation=EvalSettings(n_prompts=N_EVAL_PROMPTS, max_new_tokens=MAX_NEW_TOKENS, device=DEVICE),
    seed=SEED,
)
frontier = criteria_frontier(sft_path, task, store, criteria_settings, criteria_dir / "frontier", echo=False)
store.close()
columns = ["policy", "w_brief", "gold_positive", "gold_brief", "mean_words", "kl_to_ref"]
frontier[columns].round(3)

# %%
import plotly.graph_objects as go

from rlhfkit.figures import plotly_text

fig = go.Figure()
fig.add_trace(
    go.Scatter(
        x=frontier.gold_brief,
        y=frontier.gold_positive,
        mode="markers+lines+text",
        text=[
            plotly_text("SFT" if p == "sft" else f"w_brief={w:g}") for p, w in zip(frontier.policy, frontier.w_brief)
        ],
        textposition="top center",
        error_x=dict(
            type="data",
            symmetric=False,
            array=frontier.gold_brief_ci_hi - frontier.gold_brief,
            arrayminus=frontier.gold_brief - frontier.gold_brief_ci_lo,
        ),
        error_y=dict(
            type="data",
            symmetric=False,
            array=frontier.gold_positive_ci_hi - frontier.gold_positive,
            arrayminus=frontier.gold_positive - frontier.gold_positive_ci_lo,
        ),
    )
)
fig.update_layout(
    title="Gold frontier: positive (VADER) against brief (minus words), as PPO's weights move",
    xaxis_title="gold 'brief' (minus words; right is shorter)",
    yaxis_title="gold 'positive' (VADER)",
    template="plotly_white",
    height=460,
)
fig

# %% [markdown]
# ## 5. What to take away
#
# - Rounds are cheap to run and easy to resume, and their value shows in one column: the reward model's accuracy
#   on the policy's own samples before and after new labels. Whether three rounds beat one round of the same
#   budget depends on how far each round moves the policy: see `bench/rounds.py` and the README for what it gave
#   here, over seeds.
# - With conflicting criteria there is no single "best" policy, only a frontier; the weights are a choice about
#   what matters, and a frontier measured on gold tells what each choice costs.

# %%
print(f"notebook run time: {time.perf_counter() - notebook_started:.0f} s")
