"""The `evaluate` module distinct_n; its script is distinct_n.py.

Load it with rlhfkit.evaluation.load_metric("distinct_n")."""
