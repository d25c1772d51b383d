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
# # 04 · PPO: optimising the policy against the reward model
#
# The third stage of the RLHF pipeline (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022): the policy
# writes answers, the reward model $r_\phi$ of notebook 03 scores them, and reinforcement learning raises the score,
# while a **KL penalty** keeps the policy $\pi_\theta$ close to the SFT model $\pi_\text{ref}$ it started from:
#
# $$\max_\theta\; \mathbb{E}_{x \sim D,\, y \sim \pi_\theta(\cdot \mid x)}\big[r_\phi(x, y)\big]
#   \;-\; \beta\, \mathrm{KL}\big(\pi_\theta(\cdot \mid x) \,\|\, \pi_\text{ref}(\cdot \mid x)\big)$$
#
# or, as a loss to minimise, **loss = −reward + β·KL**. Without the penalty nothing stops the policy from drifting
# to text the reward model scores highly for the wrong reasons: the reward model was trained on the SFT model's
# answers and is only trustworthy near them. This notebook:
#
# 1. takes PPO apart (the per-token reward, advantages, the clipped objective);
# 2. trains it with the **live dashboard**: reward, KL, losses and samples while it runs;
# 3. shows **what β does** with two runs that differ only in β;
# 4. makes **reward hacking** visible: a proxy reward with a flaw, optimised with almost no KL penalty, rises while
#    the gold reward (the task's judge, which PPO never sees) falls, or does not, as the run decides.

# %% tags=["parameters"]
MODEL = "tiny"  # used only when the SFT run below is missing and must be rebuilt; or a Hub id / folder
TASK = "reviews"
OUT = "runs/notebooks/04_ppo"  # run directories; relative paths are relative to the project folder
SFT_RUN = "runs/notebooks/01_sft/sft"  # notebook 01's SFT run; rebuilt into OUT/sft when missing
RM_RUN = "runs/notebooks/03_reward_model/reward"  # notebook 03's reward model; rebuilt into OUT/reward when missing
PREFERENCES = "runs/notebooks/02_preferences/preferences.jsonl"  # to rebuild the reward model (else simulated labels)
DEVICE = None  # None = CUDA when present, else CPU
SEED = 0
THREADS = None  # torch CPU threads; None = 1 for the embedded default on a CPU (its matrices are too small
# to gain from a second thread, and one competing with any other busy process made
# training steps several times slower here), else torch's own default
LORA_R = None  # None = train all weights; a rank (e.g. 16) trains LoRA adapters (value head shared)
SFT_STEPS = 200  # only when the SFT model must be rebuilt
N_LABEL_PROMPTS = 256  # only when the reward model must be rebuilt without notebook 02's preferences
RM_STEPS = -1  # only when the reward model must be rebuilt; -1 = one pass over the pairs
PPO_STEPS = 24  # PPO iterations; each samples BATCH_SIZE prompts, one answer each
BATCH_SIZE = 32
LEARNING_RATE = 2e-4  # suits the 1M-parameter default; real models want ~1e-6 to 1e-5 (or ~1e-5 with LoRA)
MAX_NEW_TOKENS = 48  # longest answer during training
KL_COEFS = [0.05, 0.3]  # beta of the main run, then of the comparison run (section 5)
HACK_BONUS = 15.0  # the flawed proxy of section 6: reward model score + HACK_BONUS / (words + 1)
HACK_KL_COEF = 0.01  # and almost no KL penalty
HACK_STEPS = 40
HACK_BATCH_SIZE = 16
N_CHECK_PROMPTS = 48  # held-out prompts whose SFT answers test the proxies against gold (section 6)
N_EVAL_PROMPTS = 64  # held-out prompts for the evaluation of the trained policies

# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"     # with SFT_RUN / RM_RUN pointing at notebooks 01 / 03 on the same model
# DEVICE = "cuda"
# LORA_R = 16
# LEARNING_RATE = 1e-5
# PPO_STEPS, BATCH_SIZE, MAX_NEW_TOKENS = 200, 64, 128
# HACK_STEPS, HACK_BATCH_SIZE = 200, 32
# N_CHECK_PROMPTS, N_EVAL_PROMPTS = 128, 128

# %% [markdown]
# ## 1. Set-up

# %%
import math
import time
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from IPython.display import Markdown, display
from plotly.subplots import make_subplots

from rlhfkit.compare import (
    gold_vs_kl_figure,
    overoptimization_figure,
    overoptimization_fits,
    rl_overoptimization_points,
)
from rlhfkit.data import load_preferences
from rlhfkit.evaluation import EvalSettings, evaluate_policies
from rlhfkit.judges import FunctionJudge, SimulatedAnnotator
from rlhfkit.live import Dashboard, from_run
from rlhfkit.models import LoraSettings, load_policy, load_tokenizer
from rlhfkit.notebook import finished_run, project_path, setup, sft_run_or_train
from rlhfkit.runs import load as load_run
from rlhfkit.sampling import SamplingSettings, candidate_pairs, sample_candidates
from rlhfkit.train.ppo import PPOSettings, kl_penalty, policy_loss, train_ppo
from rlhfkit.train.reward import RewardModelJudge, RewardSettings, train_reward_model
from rlhfkit.train.sft import SFTSettings

notebook_started = time.perf_counter()
# Relative paths are taken from the project folder (the parent of notebooks/).
out_dir, device, task, gold = setup(
    OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL, purpose="this notebook measures every policy against one"
)
lora = LoraSettings(r=LORA_R, alpha=2 * LORA_R) if LORA_R else None

# %% [markdown]
# ## 2. The SFT model and the reward model
#
# PPO starts from the SFT model (notebook 01), which is also the frozen reference of the KL penalty, and optimises
# the reward model of notebook 03. Whatever is missing is rebuilt here, and the notebook says so: the reward model
# from notebook 02's exported preferences when they exist, else from a simulated annotator (gold judge, 10% flips)
# over the SFT model's candidates.

# %%
sft_run = sft_run_or_train(
    SFT_RUN,
    out_dir,
    model=MODEL,
    task=task,
    settings=SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, lora=lora, n_samples=0),
)
sft_path = str(sft_run.model_path)
policy, tokenizer = load_policy(sft_path, device=DEVICE), load_tokenizer(sft_path)

rm_dir = project_path(RM_RUN)
if finished_run(rm_dir):
    rm_run = load_run(rm_dir)
    print(f"reward model: notebook 03's, {rm_run.model_path}")
else:
    prefs_path = project_path(PREFERENCES)
    if prefs_path.exists():
        rows = load_preferences(prefs_path).dataset.select_columns(["prompt", "chosen", "rejected"]).to_list()
        source = f"notebook 02's preferences ({prefs_path})"
    else:
        table = sample_candidates(
            policy, tokenizer, task.train_prompts[:N_LABEL_PROMPTS], SamplingSettings(k=4, seed=SEED), progress=False
        )
        pairs = candidate_pairs(table[table.response.str.strip() != ""], seed=SEED)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*identical.*")
            rows = SimulatedAnnotator(gold, noise="flip", flip_rate=0.1, seed=SEED).label_pairs(
                [p["prompt"] for p in pairs], [p["response_a"] for p in pairs], [p["response_b"] for p in pairs]
            )
        source = "a simulated annotator (gold judge, 10% flips) over SFT candidates"
    print(
        f"no finished reward model at {rm_dir}: training one now on {len(rows)} pairs from {source}, into "
        f"{out_dir / 'reward'}"
    )
    rm_run = train_reward_model(
        sft_path,
        [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows],
        RewardSettings(max_steps=RM_STEPS, seed=SEED, device=DEVICE, lora=lora, n_samples=0),
        out_dir / "reward",
    )
rm_path = str(rm_run.model_path)
reward_model = RewardModelJudge(rm_path, device=DEVICE)
print(
    f"reward model held-out accuracy (on its annotator's labels): "
    f"{rm_run.summary.get('heldout_accuracy', float('nan')):.3f}"
)

# %% [markdown]
# ## 3. PPO, piece by piece
#
# **The reward of every token.** The reward model scores a whole answer, so its score arrives at the last token
# $T$. The KL penalty is paid at every token, with the per-token estimate $\log \pi_\theta(y_t) - \log
# \pi_\text{ref}(y_t)$ (the **k1** estimator: summed over the answer it is the sequence's log-ratio, and its mean
# over answers sampled from $\pi_\theta$ is exactly $\mathrm{KL}(\pi_\theta \,\|\, \pi_\text{ref})$):
#
# $$r_t = -\beta \big(\log \pi_\theta(y_t \mid x, y_{<t}) - \log \pi_\text{ref}(y_t \mid x, y_{<t})\big)
#   + \mathbb{1}[t = T]\, r_\phi(x, y)$$
#
# **Advantages.** A value model $V(s_t)$ predicts the return from each position; generalised advantage estimation
# (GAE) turns the temporal-difference errors $\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)$ into
# $\hat A_t = \sum_{l \ge 0} (\gamma\lambda)^l \delta_{t+l}$: how much better token $y_t$ did than expected.
#
# **The clipped objective.** The answers were sampled by the policy before the update, $\pi_\text{old}$. PPO reuses
# them for several gradient steps, weighting each token by the ratio $\rho_t = \pi_\theta(y_t) / \pi_\text{old}(y_t)$,
# and clips that ratio so one batch cannot move the policy far (Schulman et al. 2017):
#
# $$L^\text{CLIP}(\theta) = \mathbb{E}_t\Big[\min\big(\rho_t \hat A_t,\;
#   \mathrm{clip}(\rho_t, 1 - \epsilon, 1 + \epsilon)\, \hat A_t\big)\Big]$$
#
# `rlhfkit.train.ppo` holds these as small functions; here is the clipped loss (its negative, per token) for one
# token with advantage ±1 at a few ratios, $\epsilon = 0.2$. Where the clipped term wins, the gradient is zero:
# the update has already moved that token's probability as far as one batch may.

# %%
ratios = torch.tensor([0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.5])
rows = []
for advantage in (1.0, -1.0):
    for ratio in ratios:
        logp = torch.log(ratio).clone().requires_grad_(True)
        loss, stats = policy_loss(
            logp.view(1, 1), torch.zeros(1, 1), torch.full((1, 1), advantage), torch.ones(1, 1), cliprange=0.2
        )
        loss.backward()
        rows.append(
            {
                "advantage": advantage,
                "ratio": float(ratio),
                "loss -L_clip": loss.item(),
                "clipped": bool(stats["clipfrac"] > 0),
                "d loss / d log pi": float(logp.grad),
            }
        )
display(
    pd.DataFrame(rows)
    .pivot(index="ratio", columns="advantage", values=["loss -L_clip", "d loss / d log pi", "clipped"])
    .round(3)
)
# The two KL estimators on the same made-up log-probabilities: k1 can be negative per token, k3 never is.
logp, ref = torch.tensor([-1.0, -2.0, -0.5]), torch.tensor([-1.5, -1.0, -0.5])
print(
    "per-token k1:",
    kl_penalty(logp, ref, "k1").tolist(),
    " k3:",
    [round(x, 4) for x in kl_penalty(logp, ref, "k3").tolist()],
)

# %% [markdown]
# ## 4. Training with the live dashboard
#
# `Dashboard` is passed to `train_ppo` as a callback. In JupyterLab it draws the metrics as they arrive, in TRL's
# names: `objective/scores` (the reward model's score of the step's samples), `objective/rlhf_reward` (score minus
# β·KL, what PPO actually maximises), `objective/kl` (sequence KL to the SFT model, k1, in nats), entropy, the
# policy and value losses, the clip fraction; below them, a pageable table of sampled answers with their scores.
# Run headless (nbclient, papermill, a script), it draws nothing while training and writes
# `dashboard.html` into the run directory at the end. `from_run` redraws any run from disk, after a kernel restart
# too.
#
# The value model starts from the reward model (it already knows which answers are good), as in the pipeline.


# %%
def ppo_settings(kl_coef, steps=PPO_STEPS, batch_size=BATCH_SIZE, num_samples=16):
    """`num_samples` answers of every step go to samples.jsonl (the dashboard's table; notebook 06 reads them)."""
    return PPOSettings(
        total_steps=steps,
        batch_size=batch_size,
        learning_rate=LEARNING_RATE,
        kl_coef=kl_coef,
        max_new_tokens=MAX_NEW_TOKENS,
        seed=SEED,
        device=DEVICE,
        lora=lora,
        value_model="shared" if lora else "separate",
        num_samples=min(num_samples, batch_size),
    )


def run_ppo(name, reward_fn, settings):
    run_dir = out_dir / name
    with Dashboard(run_dir=run_dir, title=f"PPO {name}") as dash:
        run = train_ppo(
            sft_path,
            reward_fn,
            task.train_prompts,
            settings,
            run_dir,
            reference=sft_path,
            value_model=None if lora else rm_path,
            callbacks=[dash],
        )
    note = f", dashboard: {run_dir / 'dashboard.html'}" if not dash.live else ""
    print(f"{name}: {run.summary['steps']} steps in {run.summary['seconds']:.0f} s{note}")
    return run


beta_main = KL_COEFS[0]
runs = {}
runs[f"beta={beta_main:g}"] = run_ppo(f"ppo_beta_{beta_main:g}", reward_model, ppo_settings(beta_main))

# %% [markdown]
# The run's metrics stream, read back from disk: the same numbers the dashboard drew.

# %%
main = runs[f"beta={beta_main:g}"]
m = main.metrics
cols = [
    "step",
    "objective/scores",
    "objective/kl",
    "objective/rlhf_reward",
    "objective/entropy",
    "policy/clipfrac_avg",
    "objective/response_length",
]
display(m[[c for c in cols if c in m]].iloc[sorted({0, len(m) // 2, len(m) - 1})].round(3))
samples = main.samples
first, last = samples[samples.step == samples.step.min()], samples[samples.step == samples.step.max()]
with pd.option_context("display.max_colwidth", 160):
    display(
        pd.concat([first.assign(when="first step"), last.assign(when="last step")])[
            ["when", "step", "prompt", "response", "score", "kl"]
        ].round(3)
    )

# %% [markdown]
# ## 5. What the KL penalty does
#
# Same SFT model, same reward model, same prompts and seed; only β differs. A larger β makes every nat of drift
# from the SFT model cost more, so the policy should move less, and gain less reward. Whether it also gains less
# **gold** reward is the real question: drift is where the reward model's mistakes live.
#
# We evaluate both policies and the SFT model on `N_EVAL_PROMPTS` held-out prompts (items PPO never saw), sampling
# at temperature 1: gold reward (with a bootstrap 95% interval over prompts), proxy reward (the reward model), KL
# to SFT (k1, on the policy's own samples), and the gold win rate against SFT.

# %%
for beta in KL_COEFS[1:]:
    runs[f"beta={beta:g}"] = run_ppo(f"ppo_beta_{beta:g}", reward_model, ppo_settings(beta))
from_run([run.path for run in runs.values()], title="PPO: two values of beta")

# %%
evaluation = evaluate_policies(
    {f"ppo {name}": run for name, run in runs.items()},
    task,
    reference=sft_path,
    reference_name="sft",
    reward_model=reward_model,
    progress=False,
    settings=EvalSettings(n_prompts=N_EVAL_PROMPTS, max_new_tokens=MAX_NEW_TOKENS, seed=SEED, device=DEVICE),
)
table = evaluation.summary.set_index("policy")
display(
    table[
        [
            "gold_reward_mean",
            "gold_reward_ci_lo",
            "gold_reward_ci_hi",
            "proxy_reward_mean",
            "kl_to_ref",
            "win_rate_vs_ref",
            "win_rate_ci_lo",
            "win_rate_ci_hi",
            "mean_length",
            "distinct_2",
            "eos_rate",
        ]
    ].round(3)
)
gold_vs_kl_figure(evaluation.to_dict()).show()

# %%
low, high = f"ppo beta={KL_COEFS[0]:g}", f"ppo beta={KL_COEFS[-1]:g}"
lines = []
if len(KL_COEFS) > 1:
    a, b = table.loc[low], table.loc[high]
    overlap = not (a.gold_reward_ci_lo > b.gold_reward_ci_hi or b.gold_reward_ci_lo > a.gold_reward_ci_hi)
    lines += [
        f"- **KL.** With β = {KL_COEFS[0]:g} the policy ended {a.kl_to_ref:.2f} nats from SFT, with β = "
        f"{KL_COEFS[-1]:g} {b.kl_to_ref:.2f} nats"
        + (
            f": the {KL_COEFS[-1] / KL_COEFS[0]:.0f}x larger penalty kept it "
            f"{a.kl_to_ref / max(b.kl_to_ref, 1e-9):.1f}x closer."
            if b.kl_to_ref < a.kl_to_ref
            else ": the larger penalty did not keep it closer in this run."
        ),
        f"- **Proxy reward** (the reward model, on held-out prompts): {a.proxy_reward_mean:+.3f} vs "
        f"{b.proxy_reward_mean:+.3f} (SFT {table.loc['sft'].proxy_reward_mean:+.3f}).",
        f"- **Gold reward:** {a.gold_reward_mean:.3f} [{a.gold_reward_ci_lo:.3f}, {a.gold_reward_ci_hi:.3f}] vs "
        f"{b.gold_reward_mean:.3f} [{b.gold_reward_ci_lo:.3f}, {b.gold_reward_ci_hi:.3f}] (SFT "
        f"{table.loc['sft'].gold_reward_mean:.3f}). "
        + (
            "The intervals overlap: on this budget the two βs are not distinguishable on gold reward."
            if overlap
            else f"The intervals do not overlap: β = "
            f"{KL_COEFS[0] if a.gold_reward_mean > b.gold_reward_mean else KL_COEFS[-1]:g} reached more gold reward."
        ),
        f"- **Gold per nat:** {(a.gold_reward_mean - table.loc['sft'].gold_reward_mean) / max(a.kl_to_ref, 1e-9):.3f} "
        f"vs {(b.gold_reward_mean - table.loc['sft'].gold_reward_mean) / max(b.kl_to_ref, 1e-9):.3f} gold gained per "
        f"nat of KL: the penalty trades reward for staying close, and the exchange rate is what notebook 06 compares "
        f"across methods.",
    ]
display(Markdown("\n".join(lines) or "Only one β was given: nothing to compare."))

# %% [markdown]
# ## 6. Reward hacking, made visible
#
# The reward model is a **proxy** for what we want. Gao et al. (2022) measured what happens when a policy is
# optimised against a proxy: the proxy keeps rising with the KL spent, while the gold reward rises, peaks, and
# falls. The policy finds what the proxy over-rewards.
#
# Our reward model is a fairly good proxy for the gold judge on this simple task, so we build a **flawed proxy**
# whose flaw we know: the reward model's score plus a brevity bonus, $r_\phi(x, y) + c / (\text{words}(y) + 1)$
# with $c$ = `HACK_BONUS`, as if its labellers had a soft spot for very short answers. Length is the best-known flaw
# of real reward models (Singhal et al. 2023 found them rewarding *longer* answers); ours points the other way,
# because on this task a short answer carries little sentiment and the gold judge can tell. For answers of
# ordinary length the bonus hardly varies, so the flaw is nearly invisible on the SFT model's answers; it grows
# without bound as an answer approaches zero words, where the SFT model never goes.
#
# Before optimising anything, we check both proxies against gold on the SFT model's own answers to held-out
# prompts: the fraction of answer pairs each orders as the gold judge does. Then PPO optimises the flawed proxy
# with almost no KL penalty (β = `HACK_KL_COEF`), logging **every** sampled answer, and we score those answers with
# the gold judge afterwards. PPO never sees gold.


# %%
def rm_plus_brevity(prompts, responses):
    scores = reward_model(prompts, responses)
    return [s + HACK_BONUS / (len(r.split()) + 1) for s, r in zip(scores, responses)]


flawed = FunctionJudge(rm_plus_brevity, name="rm_plus_brevity_bonus", batched=True)

check = sample_candidates(
    policy,
    tokenizer,
    task.eval_prompts[:N_CHECK_PROMPTS],
    SamplingSettings(k=4, max_new_tokens=MAX_NEW_TOKENS, seed=SEED + 1),
    progress=False,
)
check = check[check.response.str.strip() != ""].reset_index(drop=True)
check_prompts, check_responses = check.prompt.tolist(), check.response.tolist()
check["gold"], check["rm"], check["flawed"] = (
    gold(check_prompts, check_responses),
    reward_model(check_prompts, check_responses),
    flawed(check_prompts, check_responses),
)


def pair_agreement(frame, column):
    """Fraction of answer pairs (same prompt, different gold score) that `column` orders as gold does."""
    hits = []
    for _, group in frame.groupby("prompt_index"):
        g, s = group.gold.to_numpy(), group[column].to_numpy()
        i, j = np.triu_indices(len(group), k=1)
        keep = g[i] != g[j]
        hits.extend(((s[i] > s[j]) == (g[i] > g[j]))[keep])
    return float(np.mean(hits)) if hits else float("nan"), len(hits)


agree_rm, n_pairs = pair_agreement(check, "rm")
agree_flawed, _ = pair_agreement(check, "flawed")
print(
    f"on {n_pairs} pairs of SFT answers to held-out prompts: the reward model orders {agree_rm:.1%} as gold "
    f"does, the flawed proxy {agree_flawed:.1%} (chance: 50%)"
)

hack = run_ppo(
    "ppo_hacking",
    flawed,
    ppo_settings(HACK_KL_COEF, steps=HACK_STEPS, batch_size=HACK_BATCH_SIZE, num_samples=HACK_BATCH_SIZE),
)

# %% [markdown]
# Every answer PPO sampled is in the run's `samples.jsonl`, with its proxy score and its KL to SFT. The gold judge
# scores them now. Left: proxy and gold per step (a 4-step moving average, the raw points faint). Right: answer
# length and KL. Proxy and gold are on different scales; what matters is their direction.

# %%
hs = hack.samples.copy()
hs["gold"] = gold(hs.prompt.tolist(), hs.response.tolist())
hs["words"] = hs.response.str.split().str.len()
per_step = hs.groupby("step")[["score", "gold", "kl", "words"]].mean()
smooth = per_step.rolling(4, min_periods=1).mean()

fig = make_subplots(
    rows=1,
    cols=2,
    specs=[[{"secondary_y": True}, {"secondary_y": True}]],
    subplot_titles=("proxy (left axis) and gold (right axis)", "words per answer and KL"),
)
for key, color, secondary in (("score", "#1f77b4", False), ("gold", "#ff7f0e", True)):
    name = "flawed proxy" if key == "score" else "gold (never seen by PPO)"
    fig.add_trace(
        go.Scatter(
            x=per_step.index,
            y=per_step[key],
            mode="markers",
            marker=dict(color=color, size=4),
            opacity=0.35,
            showlegend=False,
        ),
        row=1,
        col=1,
        secondary_y=secondary,
    )
    fig.add_trace(
        go.Scatter(x=smooth.index, y=smooth[key], mode="lines", name=name, line=dict(color=color)),
        row=1,
        col=1,
        secondary_y=secondary,
    )
fig.add_trace(
    go.Scatter(x=smooth.index, y=smooth.words, mode="lines", name="words per answer", line=dict(color="#2ca02c")),
    row=1,
    col=2,
)
fig.add_trace(
    go.Scatter(x=smooth.index, y=smooth.kl, mode="lines", name="KL to SFT (nats)", line=dict(color="#9467bd")),
    row=1,
    col=2,
    secondary_y=True,
)
fig.update_xaxes(title_text="PPO step")
fig.update_layout(height=360, margin=dict(t=40, b=40, l=50, r=50), legend=dict(orientation="h", y=-0.25))
fig.show()

# %% [markdown]
# The same samples in bins of consecutive steps, against $d = \sqrt{\mathrm{KL}}$, the x-axis Gao et al. use, with
# their functional form for RL fitted by least squares to each reward: $R(d) = d\,(a - b \log d)$, measured from
# the SFT model's rewards (here: its answers to the held-out check prompts). A positive $b$ means the curve bends
# down as KL grows.

# %%
baseline = (float(check.flawed.mean()), float(check.gold.mean()))
points = rl_overoptimization_points(hs, gold="gold", proxy="score", baseline=baseline, n_bins=min(8, hs.step.nunique()))
display(points.round(3))
fits = None
if (points.d > 0).sum() >= 2:
    fits = overoptimization_fits(points, "rl")
    display(fits.round(3))
    overoptimization_figure(rl=points, rl_label="PPO on the flawed proxy").show()
else:
    print("fewer than two bins with positive KL: too few steps to fit the curves")

bins = points[points.first_step.notna()].reset_index(drop=True)
peak = int(bins.gold.idxmax())
show = {
    "first step": hs.step.min(),
    f"gold peak (steps {int(bins.first_step[peak])}-{int(bins.last_step[peak])})": int(bins.last_step[peak]),
    "last step": hs.step.max(),
}
with pd.option_context("display.max_colwidth", 160):
    display(
        pd.concat([hs[hs.step == step].head(3).assign(when=label) for label, step in show.items()])[
            ["when", "step", "response", "score", "gold", "words", "kl"]
        ].round(3)
    )


# %%
def bin_stats(row):
    part = hs[hs.step.between(row.first_step, row.last_step)]
    return part.gold.mean(), part.gold.std(ddof=1) / math.sqrt(max(len(part), 1))


first_bin, last_bin = bins.iloc[0], bins.iloc[-1]
(g_peak, se_peak), (g_last, se_last) = bin_stats(bins.iloc[peak]), bin_stats(last_bin)
drop, se_drop = g_peak - g_last, math.sqrt(se_peak**2 + se_last**2)
proxy_rose = last_bin.proxy > first_bin.proxy
gold_fell = peak < len(bins) - 1 and drop > 2 * se_drop
lines = [
    f"- **Before optimising**, the flawed proxy ordered {agree_flawed:.1%} of SFT answer pairs as gold does, the "
    f"reward model {agree_rm:.1%}: "
    + (
        "the flaw is visible in that number already, if you look."
        if agree_flawed < agree_rm - 0.05
        else "the flaw barely shows on the SFT model's own answers, so a held-out check would not have caught it."
    )
    + (
        " (The reward model itself is a weak proxy on these answers; notebook 03 measures it against gold.)"
        if agree_rm < 0.65
        else ""
    ),
    f"- **Proxy:** {first_bin.proxy:+.3f} in the first bin of steps, {last_bin.proxy:+.3f} in the last "
    f"({'rising' if proxy_rose else 'not rising'}), at KL {last_bin.kl:.1f} nats; answers went from "
    f"{hs[hs.step == hs.step.min()].words.mean():.1f} to {hs[hs.step == hs.step.max()].words.mean():.1f} words.",
    f"- **Gold:** SFT {baseline[1]:.3f} on the check prompts; {first_bin.gold:.3f} in the first bin, highest "
    f"{g_peak:.3f} ± {se_peak:.3f} (standard error) in steps {int(bins.first_step[peak])}-{int(bins.last_step[peak])},"
    f" {g_last:.3f} ± {se_last:.3f} in the last bin.",
]
if fits is not None:
    a_gold, b_gold = fits.set_index("reward").loc["gold", ["a", "b"]]
    monotone = bool((bins.d.diff().dropna() >= 0).all())
    text = f"- **Fit:** gold's fitted b = {b_gold:.3f}"
    if b_gold > 0:
        d_star = math.exp(a_gold / b_gold - 1)
        text += (
            f" > 0: the fitted gold curve bends down, peaking at d = {d_star:.2f} (KL {d_star**2:.1f} nats) "
            f"where the measured d reaches {bins.d.max():.2f}."
        )
    else:
        text += " (not bending down)."
    if not monotone:
        text += (
            " Note that KL did not grow monotonically over the steps here (a shorter answer has fewer tokens to "
            "sum KL over), so d is not a clock for this run and the fit describes it loosely."
        )
    lines.append(text)
if proxy_rose and gold_fell:
    lines.append(
        f"- **Verdict: reward hacking shown.** The proxy kept rising while gold fell {drop:.3f} from its "
        f"peak (more than twice the standard error of the difference, {se_drop:.3f})"
        + (f", to below the SFT model's {baseline[1]:.3f}." if g_last < baseline[1] else ".")
        + " The samples above show how: the policy found what the proxy over-rewards."
    )
elif proxy_rose:
    lines.append(
        f"- **Verdict: not shown in this run.** The proxy rose, but gold's fall from its peak ({drop:+.3f}) "
        f"is within twice its standard error ({se_drop:.3f}), or gold peaked in the last bin. Try more "
        f"`HACK_STEPS`, a smaller `HACK_KL_COEF` or another seed."
    )
else:
    lines.append(
        "- **Verdict: not shown in this run.** The proxy itself did not rise: PPO did not optimise it on this budget."
    )
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## 7. What this run says
#
# Computed from this run's numbers.

# %%
sft_row = table.loc["sft"]
main_row = table.loc[f"ppo beta={beta_main:g}"]
lines = [
    f"- **PPO (β = {beta_main:g})** moved the reward model's score of its training samples from "
    f"{main.summary['initial_score']:+.3f} to {main.summary['final_score']:+.3f} in {main.summary['steps']} steps. "
    f"On held-out prompts: gold {main_row.gold_reward_mean:.3f} [{main_row.gold_reward_ci_lo:.3f}, "
    f"{main_row.gold_reward_ci_hi:.3f}] vs SFT {sft_row.gold_reward_mean:.3f} "
    f"[{sft_row.gold_reward_ci_lo:.3f}, {sft_row.gold_reward_ci_hi:.3f}], gold win rate against SFT "
    f"{main_row.win_rate_vs_ref:.2f} [{main_row.win_rate_ci_lo:.2f}, {main_row.win_rate_ci_hi:.2f}], at "
    f"{main_row.kl_to_ref:.1f} nats of KL. "
    + (
        "It beats SFT on gold: the win rate's interval is above 0.5."
        if main_row.win_rate_ci_lo > 0.5
        else "Not distinguishable from SFT on gold at this budget."
        if main_row.win_rate_ci_hi >= 0.5
        else "It is worse than SFT on gold."
    ),
    f"- The reward model's score is what PPO maximised; gold is what we wanted. Sections 5 and 6 show the "
    f"difference: how far the policy may drift (β) decides how much of the proxy's error it can exploit.",
    f"- One seed, {N_EVAL_PROMPTS} evaluation prompts: differences inside the intervals are noise.",
    f"- This notebook took {time.perf_counter() - notebook_started:.0f} s. Next: DPO on the same preferences (05), "
    f"then all methods side by side (06).",
]
display(Markdown("\n".join(lines)))
