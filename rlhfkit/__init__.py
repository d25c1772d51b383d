"""rlhfkit: a workbench for seeing RLHF work, from SFT to PPO and DPO, on a model you can run.

The package is layered; each floor imports only from the floors below it:
  1. data, models, judges          tasks and preference data; loading models; gold judges and simulated annotators
  2. sampling, tiny                candidates per prompt; the embedded default model and the reviews task
"""

__version__ = "0.1.0"
