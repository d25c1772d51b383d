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
OUT = "runs/notebooks/06_compare"  # run directories and report.html; relative to the project folder
SFT_RUN = "runs/notebooks/01_sft/sft"  # notebook 01's SFT run; rebuilt into OUT/sft when missing
RM_RUN = "runs/notebooks/03_reward_model/reward"  # notebook 03's reward model; rebuilt into OUT/reward when missing
PREFERENCES = "runs/notebooks/02_preferences/preferences.jsonl"  # notebook 02's export; simulated when missing
PPO_RUNS = "runs/notebooks/04_ppo"  # notebook 04's folder: its ppo_beta_* runs are the PPO sweep
DPO_RUNS = "runs/notebooks/05_dpo"  # notebook 05's folder: its dpo_* runs are the DPO points
DEVICE = None  # None = CUDA when present, else CPU
SEED = 0
THREADS = None  # torch CPU threads; None = 1 for the embedded default on a CPU (its matrices are too small
# to gain from a second thread, and one competing with any other busy process made
# training steps several times slower here), else torch's own default
# Trained here only when the runs above are missing (smaller budgets than notebooks 04 and 05 use):
SFT_STEPS = 200
N_LABEL_PROMPTS = 256
RM_STEPS = -1
PPO_KL_COEFS = [0.05, 0.3]
PPO_STEPS = 16
PPO_BATCH_SIZE = 32
DPO_LOSS_TYPES = ["sigmoid"]
DPO_STEPS = 32
# RLOO is always trained here, against the same reward model as PPO:
RLOO_BETAS = [0.05, 0.3]
RLOO_STEPS = 40  # each step: 8 prompts x 4 answers
N_EVAL_PROMPTS = 128  # held-out prompts for the evaluation of every policy
BON_PROMPTS = 48  # held-out prompts for best-of-n
BON_K = 16  # SFT answers per prompt for best-of-n (n up to BON_K)
MAX_NEW_TOKENS = 64
N_SHOW = 6  # prompts shown side by side
REPRESENTATIVE = ["ppo/beta=0.05", "dpo/sigmoid/beta=0.1", "rloo/beta=0.05"]  # one policy per method (section 7)

# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"     # with every *_RUN(S) pointing at notebooks 01-05 on the same model
# DEVICE = "cuda"
# RLOO_STEPS = 200
# N_EVAL_PROMPTS, BON_PROMPTS, BON_K, MAX_NEW_TOKENS = 256, 128, 32, 256
# (training RLOO on a real model here also wants LoRA and a lower learning rate: see OnlineSettings)

# %% [markdown]
# ## 1. Set-up

# %%
import math
import time
import warnings

import numpy as np
import pandas as pd
from IPython.display import HTML, Markdown, display

from rlhfkit.compare import (
    best_of_n,
    frontier_figure,
    frontier_points,
    overoptimization_figure,
    overoptimization_fits,
    rl_overoptimization_points,
    samples_side_by_side,
    summary_table,
    win_rate_table,
    write_report,
)
from rlhfkit.data import load_preferences
from rlhfkit.evaluation import EvalSettings, evaluate_policies
from rlhfkit.judges import SimulatedAnnotator
from rlhfkit.live import from_run
from rlhfkit.models import load_policy, load_tokenizer
from rlhfkit.notebook import finished_run, project_path, setup, sft_run_or_train
from rlhfkit.runs import load as load_run
from rlhfkit.sampling import SamplingSettings, candidate_pairs, sample_candidates
from rlhfkit.train.dpo import DPOSettings, train_dpo
from rlhfkit.train.online import OnlineSettings, train_online
from rlhfkit.train.ppo import PPOSettings, train_ppo
from rlhfkit.train.reward import RewardModelJudge, RewardSettings, train_reward_model
from rlhfkit.train.sft import SFTSettings

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # transformers' notice, not ours
notebook_started = time.perf_counter()
# Relative paths are taken from the project folder (the parent of notebooks/).
out_dir, device, task, gold = setup(
    OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL, purpose="this notebook compares every policy against one"
)

# %% [markdown]
# ## 2. The policies to compare
#
# Everything starts from one SFT model and (for PPO and RLOO) one reward model; DPO trains on the preferences
# that reward model learned from. The PPO sweep (several β) comes from notebook 04, the DPO runs from notebook 05;
# RLOO is trained here over its own β sweep. Anything missing is trained here on a smaller budget, and the
# notebook says so. Notebook 04's `ppo_hacking` run optimised a deliberately flawed proxy and is left out.

# %%
sft_run = sft_run_or_train(
    SFT_RUN,
    out_dir,
    model=MODEL,
    task=task,
    settings=SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, n_samples=0),
)
sft_path = str(sft_run.model_path)
tokenizer = load_tokenizer(sft_path)

prefs_path = project_path(PREFERENCES)
preferences = None


def get_preferences():
    """Notebook 02's export, or a simulated annotator's labels over SFT candidates."""
    if prefs_path.exists():
        print(f"preferences: notebook 02's export, {prefs_path}")
        return load_preferences(prefs_path).dataset.select_columns(["prompt", "chosen", "rejected"]).to_list()
    policy = load_policy(sft_path, device=DEVICE)
    table = sample_candidates(
        policy, tokenizer, task.train_prompts[:N_LABEL_PROMPTS], SamplingSettings(k=4, seed=SEED), progress=False
    )
    pairs = candidate_pairs(table[table.response.str.strip() != ""], seed=SEED)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*identical.*")
        rows = SimulatedAnnotator(gold, noise="flip", flip_rate=0.1, seed=SEED).label_pairs(
            [p["prompt"] for p in pairs], [p["response_a"] for p in pairs], [p["response_b"] for p in pairs]
        )
    print(f"no preferences at {prefs_path}: {len(rows)} pairs labelled by a simulated annotator (gold, 10% flips)")
    return [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]


rm_dir = project_path(RM_RUN)
if finished_run(rm_dir):
    rm_run = load_run(rm_dir)
    print(f"reward model: notebook 03's, {rm_run.model_path}")
else:
    preferences = preferences or get_preferences()
    print(f"no finished reward model at {rm_dir}: training one now into {out_dir / 'reward'}")
    rm_run = train_reward_model(
        sft_path,
        preferences,
        RewardSettings(max_steps=RM_STEPS, seed=SEED, device=DEVICE, n_samples=0),
        out_dir / "reward",
    )
rm_path = str(rm_run.model_path)
reward_model = RewardModelJudge(rm_path, device=DEVICE)

policies, runs = {}, {}  # policy name -> model, and -> run (for the training curves)
ppo_dirs = sorted(d for d in project_path(PPO_RUNS).glob("ppo_beta_*") if finished_run(d))
if ppo_dirs:
    print(f"PPO: notebook 04's runs {[d.name for d in ppo_dirs]}")
    for d in ppo_dirs:
        run = load_run(d)
        runs[f"ppo/beta={run.config['kl_coef']:g}"] = run
else:
    print(f"no finished PPO runs in {project_path(PPO_RUNS)}: training β in {PPO_KL_COEFS} here ({PPO_STEPS} steps)")
    for beta in PPO_KL_COEFS:
        runs[f"ppo/beta={beta:g}"] = train_ppo(
            sft_path,
            reward_model,
            task.train_prompts,
            PPOSettings(total_steps=PPO_STEPS, batch_size=PPO_BATCH_SIZE, kl_coef=beta, seed=SEED, device=DEVICE),
            out_dir / f"ppo_beta_{beta:g}",
            reference=sft_path,
            value_model=rm_path,
        )

dpo_dirs = sorted(d for d in project_path(DPO_RUNS).glob("dpo_*") if finished_run(d))
if dpo_dirs:
    print(f"DPO: notebook 05's runs {[d.name for d in dpo_dirs]}")
    for d in dpo_dirs:
        run = load_run(d)
        runs[f"dpo/{run.summary['loss_type']}/beta={run.summary['beta']:g}"] = run
else:
    preferences = preferences or get_preferences()
    print(f"no finished DPO runs in {project_path(DPO_RUNS)}: training {DPO_LOSS_TYPES} here ({DPO_STEPS} steps)")
    for loss_type in DPO_LOSS_TYPES:
        run = train_dpo(
            sft_path,
            preferences,
            DPOSettings(loss_type=loss_type, max_steps=DPO_STEPS, seed=SEED, device=DEVICE, n_samples=0),
            out_dir / f"dpo_{loss_type}",
            reference=sft_path,
        )
        runs[f"dpo/{loss_type}/beta={run.summary['beta']:g}"] = run

# %% [markdown]
# ## 3. RLOO over a sweep of β
#
# RLOO samples $k = 4$ answers for each of 8 prompts per step and uses, for each answer, the mean reward of its
# 3 siblings as the baseline: $A_i = r_i - \frac{1}{k-1}\sum_{j \ne i} r_j$. Its KL penalty is part of the reward,
# $r_i - \beta \sum_t \log \frac{\pi_\theta(y_t)}{\pi_\text{ref}(y_t)}$, like PPO's (the k1 estimator). No value model
# is trained: that is the memory and the hyperparameters it saves. It optimises the same reward model as PPO, so
# PPO and RLOO differ only in the algorithm.

# %%
for beta in RLOO_BETAS:
    started = time.perf_counter()
    runs[f"rloo/beta={beta:g}"] = train_online(
        sft_path,
        reward_model,
        task.train_prompts,
        OnlineSettings(
            algorithm="rloo",
            beta=beta,
            max_steps=RLOO_STEPS,
            max_completion_length=MAX_NEW_TOKENS,
            seed=SEED,
            device=DEVICE,
        ),
        out_dir / f"rloo_beta_{beta:g}",
        gold_judge=gold,
    )
    print(f"rloo β={beta:g}: {RLOO_STEPS} steps in {time.perf_counter() - started:.0f} s")
from_run(
    [run.path for name, run in runs.items() if name.startswith(("ppo", "rloo"))],
    title="PPO and RLOO: reward and KL while training (each run's own samples)",
)

# %% [markdown]
# ## 4. One evaluation for every policy
#
# Every policy answers the same `N_EVAL_PROMPTS` held-out prompts (items no stage trained on), one answer each at
# temperature 1, so rewards and KL are measured on the policy's own distribution. For each: gold reward (the task's
# judge, which no method ever saw) with a bootstrap 95% interval over prompts, proxy reward (the reward model PPO
# and RLOO optimised), KL to SFT (k1: the summed log-ratio of each answer, averaged), the gold win rate against
# SFT, length and EOS rate.

# %%
evaluation = evaluate_policies(
    runs,
    task,
    reference=sft_path,
    reference_name="sft",
    reward_model=reward_model,
    progress=False,
    settings=EvalSettings(n_prompts=N_EVAL_PROMPTS, max_new_tokens=MAX_NEW_TOKENS, seed=SEED, device=DEVICE),
)
rows = evaluation.to_dict()
summary = {
    name: {**row, "win_rate_vs_sft": row["win_rate_vs_ref"], "win_rate_vs_sft_ci": row["win_rate_ci"]}
    for name, row in rows.items()
}
table = summary_table(summary)
table["eos rate"] = [rows[p]["eos_rate"] for p in table.policy]
display(table.round(3))
representative = ["sft"]  # one policy per method for the win rates, samples and report (section 7)
for method in ("ppo", "dpo", "rloo"):
    names = [name for name in runs if name.startswith(method + "/")]
    if names:
        representative.append(next((n for n in REPRESENTATIVE if n in names), names[0]))

# %% [markdown]
# ## 5. The gold-reward-vs-KL frontier
#
# Each point is one trained policy: x = how far it moved from SFT (KL, nats per answer), y = how much gold reward it
# gained over SFT, with its 95% interval. A method's line follows its upper envelope. Up and to the left is better:
# more gold for less drift. With two or three points per method this is a coarse frontier, and the intervals are
# wide: read the ordering where the intervals separate, not where they overlap. DPO's points are notebook 05's
# loss variants at one β rather than a β sweep.

# %%
points = frontier_points(evaluation, reference="sft")
display(points.round(3))
frontier_figure(points).show()

# %% [markdown]
# ## 6. Over-optimisation: proxy vs gold as the policy moves
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
policy = load_policy(sft_path, device=DEVICE)
bon_table = sample_candidates(
    policy,
    tokenizer,
    task.eval_prompts[:BON_PROMPTS],
    SamplingSettings(k=BON_K, max_new_tokens=MAX_NEW_TOKENS, seed=SEED + 7),
    progress=False,
)
bon_table["proxy"] = reward_model(bon_table.prompt.tolist(), bon_table.response.tolist())
bon_table["gold"] = gold(bon_table.prompt.tolist(), bon_table.response.tolist())
ns = sorted({n for n in (1, 2, 4, 8, 16, 32, 64) if n <= BON_K} | {BON_K})
bon = best_of_n(bon_table, ns)

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
fits = {}
for label, frame, form in (("best-of-n", bon, "bon"), ("PPO", rl, "rl")):
    if frame is not None and (frame.d > 0).sum() >= 2:
        fits[label] = overoptimization_fits(frame, form).assign(method=label)
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


def gold_peak(label):
    """d* where the fitted gold curve peaks (0 when it falls from the start), or None when it does not bend down."""
    if label not in fits:
        return None
    a, b = fits[label].set_index("reward").loc["gold", ["a", "b"]]
    if b <= 0:
        return None
    return max(a / (2 * b), 0.0) if label == "best-of-n" else math.exp(a / b - 1)


# %% [markdown]
# ## 7. Win rates between methods
#
# For one policy per method, fixed before looking at the results (`REPRESENTATIVE`: the defaults of notebooks 04
# and 05, and RLOO's first β), the share of prompts on which the row policy's answer gets a higher gold score than
# the column policy's answer to the same prompt (ties count one half), with a 95% bootstrap interval over prompts.
# Choosing the best point of each sweep on this same evaluation would flatter it.

# %%
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
# ## 8. Samples side by side
#
# The representative policies' answers to the first `N_SHOW` evaluation prompts, with gold and proxy scores.
# Model text is untrusted: pandas escapes it in these table cells, and the report below escapes it too.

# %%
side = samples_side_by_side(evaluation.samples, representative, n_prompts=N_SHOW)
with pd.option_context("display.max_colwidth", 140):
    display(side.round(3))

# %% [markdown]
# ## 9. What the evidence says
#
# Every sentence below is computed from this run's numbers: rerun with another seed or budget and it changes with
# the evidence.


# %%
def interval(lo, hi):
    return f"[{lo:.3f}, {hi:.3f}]"


def pair_agreement(frame):
    """Fraction of answer pairs (same prompt, different gold score) the reward model orders as gold does."""
    hits = []
    for _, group in frame.groupby("prompt_index"):
        g, p = group.gold.to_numpy(), group.proxy.to_numpy()
        i, j = np.triu_indices(len(group), k=1)
        keep = g[i] != g[j]
        hits.extend(((p[i] > p[j]) == (g[i] > g[j]))[keep])
    return float(np.mean(hits)) if hits else float("nan"), len(hits)


rm_agreement, rm_pairs = pair_agreement(bon_table)
lines = [
    f"- **The proxy.** PPO and RLOO optimise the reward model, which orders {rm_agreement:.1%} of {rm_pairs} "
    f"pairs of SFT answers (section 6's best-of-n samples) as the gold judge does; DPO never sees it and learns "
    f"from the preference labels directly. "
    + (
        "A weak proxy caps what PPO and RLOO can gain on gold."
        if rm_agreement < 0.7
        else "A reasonable proxy on the SFT model's answers."
    )
]
best_by_method = points[points.policy != "sft"].sort_values("gold").groupby("method").tail(1).set_index("method")
for method, p in best_by_method.iterrows():
    lines.append(
        f"- **{method.upper()}**: best gold of its {int((points.method == method).sum()) - 1} point(s) "
        f"{p.gold:.3f} {interval(p.gold_lo, p.gold_hi)} "
        f"({p.policy}, KL {p.kl:.1f} nats) vs SFT {sft_row['gold_reward_mean']:.3f} "
        f"{interval(*sft_row['gold_reward_ci'])}."
    )
if len(best_by_method) > 1:
    ordered = best_by_method.sort_values("gold", ascending=False)
    top, second = ordered.iloc[0], ordered.iloc[1]
    separated = top.gold_lo > second.gold_hi
    lines.append(
        f"- **Frontier.** {ordered.index[0].upper()} reached the highest gold reward "
        + (
            f"and its interval lies above {ordered.index[1].upper()}'s."
            if separated
            else f"but its interval overlaps {ordered.index[1].upper()}'s ({top.gold:.3f} vs {second.gold:.3f}): "
            "the sweep does not separate them."
        )
        + " (Best points are picked on this evaluation, which flatters every method a little.) Per nat of KL: "
        + ", ".join(
            f"{m.upper()} {(p.gold - sft_row['gold_reward_mean']) / max(p.kl, 1e-9):.3f}"
            for m, p in best_by_method.iterrows()
        )
        + " gold gained per nat at each best point."
    )
budget = points[points.policy != "sft"].groupby("method").kl.max().min()  # the KL range every method covers
matched = points[(points.policy != "sft") & (points.kl <= budget)].sort_values("gold").groupby("method").tail(1)
if len(best_by_method) > 1:
    lines.append(
        f"- **At matched KL** (≤ {budget:.1f} nats, the largest KL every method reached): "
        + ", ".join(
            f"{r.method.upper()} {r.gold:.3f} {interval(r.gold_lo, r.gold_hi)} at {r.kl:.1f}"
            for r in matched.sort_values("gold", ascending=False).itertuples()
        )
        + (
            f"; {', '.join(sorted(set(best_by_method.index) - set(matched.method))).upper()} has no point "
            f"that close to SFT."
            if set(best_by_method.index) - set(matched.method)
            else "."
        )
    )
for row in wins.itertuples(index=False):
    if (
        row.policy != "sft"
        and row.opponent != "sft"
        and representative.index(row.policy) < representative.index(row.opponent)
    ):
        verdict = (
            f"{row.policy} wins"
            if row.ci_lo > 0.5
            else f"{row.opponent} wins"
            if row.ci_hi < 0.5
            else "no significant difference"
        )
        lines.append(
            f"- **{row.policy} vs {row.opponent}**: win rate {row.win_rate:.2f} "
            f"{interval(row.ci_lo, row.ci_hi)} over {row.n} prompts: {verdict}."
        )
for label in fits:
    g = fits[label].set_index("reward")
    peak = gold_peak(label)
    frame = bon if label == "best-of-n" else rl
    d_max = float(frame.d.max())
    text = (
        f"- **Over-optimisation, {label}**: proxy fit a = {g.loc['proxy', 'a']:.3f}, b = {g.loc['proxy', 'b']:.3f};"
        f" gold fit a = {g.loc['gold', 'a']:.3f}, b = {g.loc['gold', 'b']:.3f}. "
    )
    if peak is None:
        text += "The fitted gold curve does not bend down: no over-optimisation visible in this range."
    elif peak == 0:
        text += "The fitted gold curve falls from the start: selecting by the proxy did not raise gold at all."
    elif peak < d_max:
        text += (
            f"The fitted gold curve peaks at d = {peak:.2f} (KL {peak**2:.1f} nats), inside the measured range "
            f"(up to d = {d_max:.2f}): past it, more proxy reward bought less gold."
        )
    else:
        text += (
            f"The fitted gold curve would peak at d = {peak:.2f} (KL {peak**2:.1f} nats), beyond the measured "
            f"range (d up to {d_max:.2f}): bending, but no decline observed yet."
        )
    lines.append(text + f" {len(frame) - 1} points: a two-parameter fit to so few points is indicative only.")
long = [name for name in runs if rows[name]["mean_length"] > 1.2 * sft_row["mean_length"]]
if long:
    lines.append(
        f"- **Length.** {', '.join(long)} answer at least 20% longer than SFT "
        f"({sft_row['mean_length']:.0f} tokens); on this task more positive sentences also raise the gold "
        f"judge (VADER), so part of those gains may be length."
    )
lines.append(
    f"- **Uncertainty.** One seed per setting, {N_EVAL_PROMPTS} evaluation prompts, intervals from "
    f"resampling prompts. Training noise (another seed) is not in these intervals: a difference that only "
    f"just clears them should be rerun with other seeds before it is believed."
)
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## 10. The report
#
# Everything above in one self-contained HTML file (plotly inlined, model text escaped), to send as it is.

# %%
figures = {"Gold reward vs KL frontier": frontier_figure(points)}
tables = {"Frontier points": points}
if fits:
    figures["Over-optimisation: proxy and gold against sqrt(KL)"] = overopt
    tables["Over-optimisation fits (Gao et al. 2022)"] = fit_table
report = write_report(
    out_dir / "report.html",
    title=f"rlhfkit: PPO vs DPO vs RLOO on {TASK}",
    summary={name: summary[name] for name in representative},
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
