"""Training stages. Each takes a model (name, path or object), data, a `*Settings` dataclass and a run directory,
writes config/metrics/samples/model there (see rlhfkit.runs), and returns the run read back (RunData).

  sft.py      supervised fine-tuning (TRL SFTTrainer)
  reward.py   reward model (TRL RewardTrainer) and the scorer used everywhere a reward model is applied
  dpo.py      DPO and its variants (TRL DPOTrainer)
  online.py   RLOO and GRPO (TRL), rewarded by a reward model or any judge
  ppo.py      our own PPO (TRL deleted its PPOTrainer in 1.13), on accelerate
"""
