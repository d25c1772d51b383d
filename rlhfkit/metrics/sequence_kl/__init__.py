"""The `evaluate` module sequence_kl; its script is sequence_kl.py.

Load it with rlhfkit.evaluation.load_metric("sequence_kl")."""
