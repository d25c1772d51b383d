"""The `evaluate` module sequence_kl; its script is sequence_kl.py (load it with rlhfkit.evaluation.load_metric("sequence_kl"))."""
