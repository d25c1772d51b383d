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
# # 02 · Preferences: candidates, labels, annotators
#
# The second stage of the RLHF pipeline (Stiennon et al. 2020; Ouyang et al. 2022) collects **comparisons**. For
# each prompt $x$ the SFT model writes several candidate answers $y_1, \dots, y_K$; a person says which one is
# better, or ranks all $K$. A ranking of $K$ answers is worth $\binom{K}{2} = K(K-1)/2$ pairwise comparisons
# (InstructGPT showed its labellers 4 to 9 answers at a time for exactly this reason). People find "which is
# better?" much easier and more consistent than "how good is this, from 1 to 10?", and the reward model of
# notebook 03 only needs the comparisons: under Bradley-Terry, $P(y_w \succ y_l) = \sigma(r(x, y_w) - r(x, y_l))$.
#
# This notebook walks the data side of that stage:
#
# 1. how candidates are drawn (greedy vs stochastic decoding) and what temperature does to their diversity;
# 2. a **label store** (one SQLite file) holding the candidates as pairs and rankings;
# 3. labelling them yourself in the **pairwise** and **ranking widgets**;
# 4. **simulated and AI annotators** as the headless alternative, writing into the same store;
# 5. how far labels can be trusted: **agreement** between annotators (Cohen's $\kappa$, Krippendorff's $\alpha$)
#    and **position bias**;
# 6. the **export** to TRL's preference format, which notebooks 03 (reward model) and 05 (DPO) train on.

# %% tags=["parameters"]
MODEL = "tiny"  # used only when the SFT run below is missing and must be rebuilt; or a Hub id / folder
TASK = "reviews"  # a builtin task, a prompts file, or a Hub dataset id
OUT = "runs/notebooks/02_preferences"  # label store and exports; relative paths are relative to the project folder
SFT_RUN = "runs/notebooks/01_sft/sft"  # notebook 01's SFT run; rebuilt into OUT/sft when missing
DEVICE = None  # None = CUDA when present, else CPU; or "cpu", "cuda:1", ...
SEED = 0
THREADS = None  # torch CPU threads; None = 1 for the embedded default on a CPU (its matrices are too small
# to gain from a second thread, and one competing with any other busy process made
# training steps several times slower here), else torch's own default
SFT_STEPS = 200  # only when the SFT model must be rebuilt
N_PROMPTS = 512  # train prompts whose candidates go into the label store (03's own fallback uses 512 too)
K = 4  # candidates per prompt
TEMPERATURE = 1.0  # sampling temperature of the candidates that get labelled
N_RANK_PROMPTS = 16  # the first N of those prompts are ranking items (all K at once); the rest become pairs
N_DIVERSITY_PROMPTS = 32  # prompts for the temperature sweep (section 4)
DIVERSITY_K = 8  # samples per prompt in the sweep
TEMPERATURES = [0.1, 0.4, 0.7, 1.0, 1.5]  # the sweep
MAX_NEW_TOKENS = 64  # longest candidate, in tokens
ANNOTATOR = "me"  # your name in the label store
FLIP_RATE = 0.1  # the simulated annotator: probability of preferring the gold-worse answer
POSITION_BIAS = 0.3  # a second simulated annotator picks the left answer this often regardless of content
EXPORT_ANNOTATORS = None  # whose labels go into preferences.jsonl; None = you (if you labelled) + the simulated one

# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"     # with SFT_RUN pointing at notebook 01's run of the same model
# DEVICE = "cuda"
# N_PROMPTS, K, N_RANK_PROMPTS = 1024, 4, 64
# N_DIVERSITY_PROMPTS, DIVERSITY_K = 64, 8
# MAX_NEW_TOKENS = 256
# (the gold judge of "reviews" is VADER; for your own task use a stronger judge, e.g. an LLM, via FunctionJudge)

# %% [markdown]
# ## 1. Set-up
#
# Everything below is a thin layer over `rlhfkit`. The label store and the exports go to `OUT`; notebook 03 reads
# `OUT/labels.db`, notebook 05 reads `OUT/preferences.jsonl`.

# %%
import sqlite3
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from IPython.display import Markdown, display
from plotly.subplots import make_subplots

from rlhfkit.data import load_preferences
from rlhfkit.evaluation import distinct
from rlhfkit.judges import FunctionJudge, SimulatedAnnotator
from rlhfkit.labeling import (
    LabelStore,
    PairwiseLabeler,
    RankingLabeler,
    agreement,
    agreement_with_judge,
    annotate_with_judge,
    position_bias,
)
from rlhfkit.live import has_frontend
from rlhfkit.models import load_policy, load_tokenizer
from rlhfkit.notebook import setup, sft_run_or_train
from rlhfkit.sampling import SamplingSettings, candidate_pairs, sample_candidates
from rlhfkit.train.sft import SFTSettings

notebook_started = time.perf_counter()
# Relative paths are taken from the project folder (the parent of notebooks/).
out_dir, device, task, gold = setup(
    OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL, purpose="the simulated annotators of this notebook need one"
)
out_dir.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 2. The SFT model
#
# Candidates come from the SFT model: the reward model must learn to judge the answers PPO will start from, so the
# comparisons are made between *its* answers. Notebook 01 saved one; if it is not there, we train one now.

# %%
sft_run = sft_run_or_train(
    SFT_RUN,
    out_dir,
    model=MODEL,
    task=task,
    settings=SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, n_samples=0),
)
sft_path = sft_run.model_path
policy, tokenizer = load_policy(sft_path, device=DEVICE), load_tokenizer(sft_path)

# %% [markdown]
# ## 3. Greedy vs stochastic decoding
#
# A language model gives a distribution over the next token, $p(v \mid x, y_{<t}) \propto \exp(z_v)$ from its
# logits $z$. **Greedy** decoding takes the most likely token every time: one fixed answer per prompt, the same on
# every call. A comparison needs two *different* answers, so candidates are **sampled**. Temperature $T$ reshapes
# the distribution before sampling:
#
# $$p_T(v) = \frac{\exp(z_v / T)}{\sum_u \exp(z_u / T)}$$
#
# $T < 1$ sharpens it towards greedy ($T \to 0$ is greedy), $T > 1$ flattens it towards uniform. Below: one prompt
# answered greedily three times, then sampled $K$ times. `logprob/token` is the answer's mean log-probability per
# token under the model's own ($T = 1$) distribution: how typical the model finds its own answer.

# %%
prompt = task.train_prompts[0]
greedy = sample_candidates(
    policy,
    tokenizer,
    [prompt] * 3,
    SamplingSettings(k=1, do_sample=False, max_new_tokens=MAX_NEW_TOKENS),
    progress=False,
)
sampled = sample_candidates(
    policy,
    tokenizer,
    [prompt],
    SamplingSettings(k=K, temperature=TEMPERATURE, max_new_tokens=MAX_NEW_TOKENS, seed=SEED),
    progress=False,
)
demo = pd.concat([greedy.assign(decoding="greedy"), sampled.assign(decoding=f"sampled, T={TEMPERATURE:g}")])
demo["logprob/token"] = demo.sum_logprob / (demo.n_tokens + (demo.finish_reason == "eos"))
demo["gold"] = gold(demo.prompt.tolist(), demo.response.tolist())
print(f"prompt: {prompt}")
print(
    f"greedy gave {greedy.response.nunique()} distinct answer(s) in 3 calls; sampling gave "
    f"{sampled.response.nunique()} distinct answers in {K}"
)
with pd.option_context("display.max_colwidth", 200):
    display(demo[["decoding", "response", "n_tokens", "logprob/token", "gold"]].reset_index(drop=True).round(3))

# %% [markdown]
# ## 4. What temperature does to diversity
#
# We sample `DIVERSITY_K` answers for each of `N_DIVERSITY_PROMPTS` prompts at every temperature of the sweep
# and measure:
#
# - **unique answers per prompt** (out of `DIVERSITY_K`): duplicates are wasted comparisons;
# - **distinct-1 / distinct-2**: distinct unigrams / bigrams over all tokens of all answers (Li et al. 2016), a
#   standard lexical-diversity measure;
# - **gold spread within a prompt**: the standard deviation of the gold score among one prompt's answers. Pairs of
#   answers that differ in quality are what teaches a reward model; identical-quality pairs teach nothing;
# - **logprob/token** under the model at $T = 1$: higher temperature buys diversity with less likely text.

# %%
diversity_prompts = task.eval_prompts[:N_DIVERSITY_PROMPTS]


def diversity_row(label, temperature, table):
    table = table.assign(gold=gold(table.prompt.tolist(), table.response.tolist()))
    per_prompt = table.groupby("prompt_index")
    return {
        "decoding": label,
        "temperature": temperature,
        "unique answers per prompt": per_prompt.response.nunique().mean(),
        **distinct(table.response.tolist(), (1, 2)),
        "gold mean": table.gold.mean(),
        "gold spread within prompt": per_prompt.gold.std().fillna(0).mean(),
        "logprob/token": (table.sum_logprob / (table.n_tokens + (table.finish_reason == "eos"))).mean(),
        "EOS rate": (table.finish_reason == "eos").mean(),
        "mean tokens": table.n_tokens.mean(),
    }


started = time.perf_counter()
# Greedy: one answer per prompt (repeating the call gives the same answer, so it is sampled once).
rows = [
    diversity_row(
        "greedy",
        0.0,
        sample_candidates(
            policy,
            tokenizer,
            diversity_prompts,
            SamplingSettings(k=1, do_sample=False, max_new_tokens=MAX_NEW_TOKENS),
            progress=False,
        ),
    )
]
for temperature in TEMPERATURES:
    table = sample_candidates(
        policy,
        tokenizer,
        diversity_prompts,
        SamplingSettings(k=DIVERSITY_K, temperature=temperature, max_new_tokens=MAX_NEW_TOKENS, seed=SEED),
        progress=False,
    )
    rows.append(diversity_row("sampled", temperature, table))
sweep = pd.DataFrame(rows)
print(
    f"{len(TEMPERATURES) * N_DIVERSITY_PROMPTS * DIVERSITY_K + N_DIVERSITY_PROMPTS} answers sampled in "
    f"{time.perf_counter() - started:.1f} s"
)
display(sweep.round(3))

fig = make_subplots(
    rows=1,
    cols=3,
    subplot_titles=(
        f"unique answers per prompt (of {DIVERSITY_K})",
        "distinct-n",
        "gold: mean and spread within a prompt",
    ),
)
sampled_rows = sweep[sweep.decoding == "sampled"]
fig.add_trace(
    go.Scatter(
        x=sampled_rows.temperature,
        y=sampled_rows["unique answers per prompt"],
        mode="lines+markers",
        name="unique answers",
    ),
    row=1,
    col=1,
)
for key in ("distinct_1", "distinct_2"):
    fig.add_trace(go.Scatter(x=sweep.temperature, y=sweep[key], mode="lines+markers", name=key), row=1, col=2)
for key in ("gold mean", "gold spread within prompt"):
    fig.add_trace(go.Scatter(x=sweep.temperature, y=sweep[key], mode="lines+markers", name=key), row=1, col=3)
fig.update_xaxes(title_text="temperature (0 = greedy)")
fig.update_layout(height=340, margin=dict(t=40, b=40, l=40, r=10), legend=dict(orientation="h", y=-0.25))
fig.show()

# %%
lo, hi = sampled_rows.iloc[0], sampled_rows.iloc[-1]
at_t = sweep[(sweep.decoding == "sampled") & (sweep.temperature == TEMPERATURE)]
lines = [
    f"- From T = {lo.temperature:g} to T = {hi.temperature:g}, distinct-2 went from {lo.distinct_2:.3f} to "
    f"{hi.distinct_2:.3f} and unique answers per prompt from {lo['unique answers per prompt']:.2f} to "
    f"{hi['unique answers per prompt']:.2f} (of {DIVERSITY_K}); greedy decoding has one answer per prompt and "
    f"distinct-2 {sweep.iloc[0].distinct_2:.3f}.",
    f"- The price: the answers' log-probability per token under the model went from "
    f"{lo['logprob/token']:.2f} to {hi['logprob/token']:.2f} nats"
    + (" (hotter samples are less typical of the model)." if hi["logprob/token"] < lo["logprob/token"] else "."),
    f"- Gold spread within a prompt went from {lo['gold spread within prompt']:.3f} to "
    f"{hi['gold spread within prompt']:.3f}: "
    + (
        "hotter sampling gives pairs that differ more in quality."
        if hi["gold spread within prompt"] > lo["gold spread within prompt"]
        else "on this model temperature did not widen the quality spread."
    ),
]
if not at_t.empty:
    unique_at_t = at_t.iloc[0]["unique answers per prompt"]
    lines.append(
        f"- We label candidates sampled at T = {TEMPERATURE:g} ({unique_at_t:.2f} unique of {DIVERSITY_K}): "
        + (
            "the model's own distribution, the one PPO samples from, so the reward model is trained on the "
            "answers it will have to judge."
            if TEMPERATURE == 1.0
            else "note that PPO samples at T = 1, so the reward model will judge answers from a different "
            "distribution than it learned on."
        )
    )
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## 5. Candidates into the label store
#
# `LabelStore` is one SQLite file holding the items to label and every judgment made on them, by anyone. Each
# judgment is committed (and fsynced) before the widget acknowledges it, so a crashed kernel loses nothing, and
# several people (or processes) can label the same file at once. Adding an item that is already there returns its
# id: rerunning this cell adds nothing new and keeps every label.
#
# For the first `N_RANK_PROMPTS` prompts we store a **ranking** item (all $K$ answers at once); for the rest, every
# pair of distinct answers as a **pair** item ($K(K-1)/2$ per prompt). Empty answers are dropped: nobody can prefer
# one.

# %%
started = time.perf_counter()
table = sample_candidates(
    policy,
    tokenizer,
    task.train_prompts[:N_PROMPTS],
    SamplingSettings(k=K, temperature=TEMPERATURE, max_new_tokens=MAX_NEW_TOKENS, seed=SEED),
    progress=False,
)
sample_seconds = time.perf_counter() - started
empty = table.response.str.strip() == ""
table = table[~empty]
store_path = out_dir / "labels.db"
store = LabelStore(store_path)
pair_ids = store.add_pairs(
    candidate_pairs(table[table.prompt_index >= N_RANK_PROMPTS], seed=SEED), source=f"sft candidates, T={TEMPERATURE:g}"
)
rankings = [
    {"prompt": group.prompt.iloc[0], "responses": list(dict.fromkeys(group.response))}
    for _, group in table[table.prompt_index < N_RANK_PROMPTS].groupby("prompt_index")
]
rank_ids = store.add_rankings(
    [r for r in rankings if len(r["responses"]) >= 2], source=f"sft candidates, T={TEMPERATURE:g}"
)
print(
    f"{len(table)} candidates for {N_PROMPTS} prompts sampled in {sample_seconds:.1f} s "
    f"({int(empty.sum())} empty ones dropped)"
)
print(
    f"label store {store_path}: {store.count('pair')} pair items, {store.count('ranking')} ranking items "
    f"(this run added {len(set(pair_ids))} pairs and {len(set(rank_ids))} rankings; duplicates share an id)"
)
example = store.item(pair_ids[0])
print(f"\nitem {example['id']}: {example['prompt']}\n  a: {example['candidates'][0]}\n  b: {example['candidates'][1]}")

# %% [markdown]
# ## 6. Label them yourself
#
# The **pairwise labeler** shows one pair at a time, in a random left/right order that the store records with your
# decision (so position bias can be measured later). Keys: **1** or **←** = left is better, **2** or **→** = right
# is better, **3** tie, **4** both bad, **s** skip, **z** undo, **r** write a rationale. Clicking works too, and
# *Recent decisions* reopens one to change it. Label a handful, then run the rest of the notebook: your labels are
# in the store already, and they join the exported preferences (section 9).
#
# Run headless (nbclient, papermill, CI), no front end draws the widget: the cell still runs and records nothing.

# %%
pairwise = PairwiseLabeler(store, ANNOTATOR)
if not has_frontend():
    print(
        f"no interactive front end: the widget is created but not drawn; {ANNOTATOR!r} has "
        f"{store.progress(ANNOTATOR, 'pair')['done']} pair labels so far"
    )
pairwise

# %% [markdown]
# The **ranking labeler** shows all $K$ answers to one prompt: press their numbers best first (or drag them into
# order), then **Enter**. One ranking of $K$ answers becomes $K(K-1)/2$ preference pairs at export; that is why
# InstructGPT collected rankings.

# %%
ranking = RankingLabeler(store, ANNOTATOR)
ranking

# %%
mine = {kind: store.progress(ANNOTATOR, kind) for kind in ("pair", "ranking")}
pd.DataFrame(mine).T[["done", "total", "skipped", "per_minute"]]

# %% [markdown]
# ## 7. The headless alternative: simulated and AI annotators
#
# Labelling thousands of pairs by hand is the expensive part of RLHF. Two stand-ins, both writing into the store
# under their own names, exactly as a person would (same items, same recorded display order):
#
# - a **simulated annotator**: the task's gold judge (VADER sentiment) with label noise: it prefers the answer the
#   judge scores higher, except that with probability `FLIP_RATE` it picks the other one. Because the gold judge is
#   known, we can measure everything later stages do against it; real RLHF cannot.
# - **AI feedback** (RLAIF, Bai et al. 2022): any judge function labels the items. Here a deliberately crude one,
#   counting positive minus negative words from a short word list and ignoring negation ("not good" counts as
#   good), to show what agreement looks like between two *different* judges. An LLM judge plugs in the same way:
#   `annotate_with_judge(store, my_llm_judge)` with `my_llm_judge(prompts, responses) -> scores`.
#
# The simulated annotator labels every pair and ranking item: its labels are the ones notebook 03 trains on when
# you label nothing yourself.

# %%
sim = SimulatedAnnotator(gold, noise="flip", flip_rate=FLIP_RATE, seed=SEED)
started = time.perf_counter()
written = {kind: annotate_with_judge(store, sim, kind=kind, seed=SEED, progress=False) for kind in ("pair", "ranking")}
print(
    f"{sim.name} labelled {written['pair']} pairs and {written['ranking']} rankings in "
    f"{time.perf_counter() - started:.1f} s (items it had already labelled are not labelled again)"
)
print(f"annotators in {store_path.name}: {store.annotators()}")

# %% [markdown]
# ## 8. Can the labels be trusted? Agreement and position bias
#
# We compare annotators on a **copy** of the store, so that the extra study annotators never end up in the labels
# later notebooks train on. On the copy, three more annotators label the same items: the crude word-count AI judge,
# a simulated annotator with **Bradley-Terry noise** (mistakes concentrate on close calls:
# $P(\text{prefer } a) = \sigma((s_a - s_b) / \tau)$, more like a person than a fixed flip rate), and a simulated
# annotator with **position bias** (with probability `POSITION_BIAS` it picks whatever is shown on the left).
#
# - **Cohen's $\kappa$** for two annotators: $\kappa = (p_o - p_e) / (1 - p_e)$, the observed agreement $p_o$
#   corrected for the agreement $p_e$ two annotators would reach by chance with their own label frequencies.
#   1 is perfect, 0 is chance. **Krippendorff's $\alpha$** generalises it to any number of annotators with missing
#   labels. Two annotators that each flip labels independently with rate $p$ agree on
#   $(1-p)^2 + p^2$ of the items: 82% at $p = 0.1$, i.e. $\kappa \approx 0.64$ although each is 90% right.
# - **Position bias**: how often the answer shown on the left wins. Without bias it is 0.5 up to sampling noise;
#   an annotator who picks left with probability $b$ regardless of content, and otherwise chooses by content, wins
#   left $b + (1 - b)/2$ of the time.

# %%
study_path = out_dir / "annotator_study.db"
for suffix in ("", "-wal", "-shm"):
    Path(f"{study_path}{suffix}").unlink(missing_ok=True)
source, target = sqlite3.connect(store_path), sqlite3.connect(study_path)
source.backup(target)  # a consistent snapshot, even while the widgets write to the original
source.close()
target.close()
study = LabelStore(study_path)

POSITIVE = {
    "good",
    "great",
    "excellent",
    "lovely",
    "delight",
    "wonderful",
    "enjoyable",
    "remarkable",
    "clever",
    "fantastic",
    "terrific",
    "triumph",
    "best",
    "pleasant",
    "solid",
    "charming",
    "gem",
    "loved",
    "joy",
}
NEGATIVE = {
    "bad",
    "poor",
    "awful",
    "terrible",
    "boring",
    "dull",
    "lazy",
    "messy",
    "painful",
    "weak",
    "worst",
    "forgettable",
    "frustrating",
    "lifeless",
    "bland",
    "chore",
    "waste",
    "disappointing",
    "flat",
}


def word_count_judge(prompts, responses):
    """Positive minus negative words from two short lists: a cheap, negation-blind sentiment judge."""
    words = [[w.strip(".,!?;:").lower() for w in r.split()] for r in responses]
    return [float(sum(w in POSITIVE for w in ws) - sum(w in NEGATIVE for w in ws)) for ws in words]


study_annotators = [
    FunctionJudge(word_count_judge, name="wordcount", batched=True),
    SimulatedAnnotator(gold, noise="bradley_terry", temperature=0.2, seed=SEED + 1),
    SimulatedAnnotator(gold, noise="flip", flip_rate=FLIP_RATE, position_bias=POSITION_BIAS, seed=SEED + 2),
]
for judge in study_annotators:
    annotate_with_judge(study, judge, kind="pair", seed=SEED + 3, progress=False)
names = study.annotators()
print(f"annotators on the copy: {names}")

kappas = agreement(study, kind="pair")
display(kappas.round(3))

rows = []
for name in names:
    with_gold = agreement_with_judge(study, gold, name)
    bias = position_bias(study, name)
    rows.append(
        {
            "annotator": name,
            "pairs decided": with_gold["n"],
            "agrees with gold": with_gold["agreement"],
            "gold 95% CI": f"[{with_gold['ci'][0]:.3f}, {with_gold['ci'][1]:.3f}]",
            "ties": with_gold["ties"],
            "left wins": bias["left_rate"],
            "left 95% CI": f"[{bias['ci'][0]:.3f}, {bias['ci'][1]:.3f}]",
            "biased?": not bias["ci"][0] <= 0.5 <= bias["ci"][1],
        }
    )
trust = pd.DataFrame(rows)
display(trust.round(3))

fig = make_subplots(rows=1, cols=2, subplot_titles=("agreement with the gold judge", "share of left answers chosen"))
for col, key in enumerate(("agrees with gold", "left wins"), start=1):
    fig.add_trace(go.Bar(x=trust.annotator, y=trust[key], showlegend=False), row=1, col=col)
fig.add_hline(y=0.5, line_dash="dot", row=1, col=2, annotation_text="no bias")
fig.update_layout(height=340, margin=dict(t=40, b=80, l=40, r=10))
fig.show()

# %%
by_name = trust.set_index("annotator")
pairs_k = kappas[kappas.statistic == "cohen_kappa"].set_index(["annotator_a", "annotator_b"])
biased_name = study_annotators[2].name
bt_name = study_annotators[1].name


def kappa(a, b):
    key = (a, b) if (a, b) in pairs_k.index else (b, a)
    return pairs_k.loc[key, "value"] if key in pairs_k.index else float("nan")


expected_left = POSITION_BIAS + (1 - POSITION_BIAS) / 2
lines = [
    f"- **{sim.name}** agrees with the gold judge on {by_name.loc[sim.name, 'agrees with gold']:.1%} of "
    f"{by_name.loc[sim.name, 'pairs decided']} pairs {by_name.loc[sim.name, 'gold 95% CI']} (its flip rate "
    f"{FLIP_RATE:g} predicts {1 - FLIP_RATE:.0%}).",
    f"- **Bradley-Terry noise** ({bt_name}): {by_name.loc[bt_name, 'agrees with gold']:.1%} agreement with gold; "
    f"its mistakes fall on pairs whose gold scores are close.",
    f"- **Position bias** ({biased_name}): it chose the left answer {by_name.loc[biased_name, 'left wins']:.1%} of "
    f"the time {by_name.loc[biased_name, 'left 95% CI']} (the formula predicts {expected_left:.1%}); "
    + (
        "the interval excludes 0.5, so the bias is detectable from its labels alone, without knowing the truth."
        if by_name.loc[biased_name, "biased?"]
        else "the interval still contains 0.5: too few labels to detect it."
    )
    + f" {sim.name}, with no bias, chose left {by_name.loc[sim.name, 'left wins']:.1%} of the time.",
    f"- **Cohen's kappa** between {sim.name} and the BT annotator: {kappa(sim.name, bt_name):.2f}; between "
    f"{sim.name} and the word-count AI judge: {kappa(sim.name, 'judge:wordcount'):.2f}. Krippendorff's alpha over "
    f"all {len(names)} annotators: {kappas.attrs['alpha']:.2f} on {kappas.attrs['n_units']} items.",
    f"- The word-count AI judge agrees with gold on {by_name.loc['judge:wordcount', 'agrees with gold']:.1%} of the "
    f"pairs it decided and calls {by_name.loc['judge:wordcount', 'ties']} pairs a tie (same count): a cheap judge is "
    f"a weaker annotator, and agreement statistics are how you find out before training on it.",
]
if ANNOTATOR in names:
    lines.append(
        f"- **You** agree with the gold judge on {by_name.loc[ANNOTATOR, 'agrees with gold']:.1%} of "
        f"{by_name.loc[ANNOTATOR, 'pairs decided']} pairs, and with {sim.name} at kappa "
        f"{kappa(ANNOTATOR, sim.name):.2f}."
    )
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## 9. Export to TRL's preference format
#
# `store.export(...)` writes the active judgments as TRL preference rows: `prompt`, `chosen`, `rejected`, plus the
# annotator, the side the chosen answer was shown on, the rationale and timing. A ranking becomes all its pairs;
# ties, "both bad" and skips express no preference and are left out (and counted). `load_preferences` reads the file
# back with full validation, as notebooks 03 and 05 will: any bad row would fail here with its row and field named.

# %%
have_mine = ANNOTATOR in store.annotators()
export_annotators = EXPORT_ANNOTATORS or ([ANNOTATOR] if have_mine else []) + [sim.name]
rows, counts = store.to_preferences(annotators=export_annotators)
export_path = store.export(out_dir / "preferences.jsonl", annotators=export_annotators)
prefs = load_preferences(export_path)
dataset = store.export("dataset", annotators=export_annotators)  # a datasets.Dataset, for TRL's trainers directly
from_rankings = sum(r["source_kind"] == "ranking" for r in rows)
print(f"exported {counts['pairs']} preference pairs from {export_annotators} to {export_path}")
print(
    f"  {counts['pair_judgments']} pair judgments -> {counts['pairs'] - from_rankings} pairs "
    f"({counts['ties']} ties, {counts['both_bad']} both bad, {counts['skipped']} skips left out); "
    f"{counts['rankings']} rankings -> {from_rankings} pairs"
)
print(
    f"validated by load_preferences: {len(prefs)} rows, format {prefs.format!r}; "
    f"Dataset columns: {dataset.column_names[:3]} + {len(dataset.column_names) - 3} more"
)
with pd.option_context("display.max_colwidth", 100):
    display(pd.DataFrame(rows)[["prompt", "chosen", "rejected", "annotator", "source_kind", "chosen_position"]].head(5))

# %% [markdown]
# ## 10. What this run says
#
# Computed from this run's numbers.

# %%
label_agreement = by_name.loc[sim.name, "agrees with gold"]
lines = [
    f"- **Data.** {store.count('pair')} pair items and {store.count('ranking')} ranking items from {N_PROMPTS} "
    f"prompts x {K} candidates at T = {TEMPERATURE:g}; {counts['pairs']} preference pairs exported, of which "
    f"{from_rankings} came from {counts['rankings']} rankings ({from_rankings / max(counts['rankings'], 1):.1f} pairs "
    f"per ranking).",
    f"- **Your labels.** "
    + (
        f"{sum(r['annotator'] == ANNOTATOR for r in rows)} of the exported pairs are yours."
        if have_mine
        else "None yet: the export holds the simulated annotator's labels only. Label in section 6 "
        "and rerun sections 8-10 to add yours."
    ),
    f"- **Label quality.** The training labels agree with the gold judge on {label_agreement:.1%}: that is about "
    f"the ceiling a reward model trained on them can reach if it only imitates them, and notebook 03 measures how "
    f"close it gets.",
    f"- Next: notebook 03 trains a reward model on `{store_path}`, notebook 05 runs DPO on `{export_path}`.",
    f"- This notebook took {time.perf_counter() - notebook_started:.0f} s.",
]
display(Markdown("\n".join(lines)))
