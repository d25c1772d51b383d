"""The `evaluate` module win_rate; its script is win_rate.py (load it with rlhfkit.evaluation.load_metric("win_rate"))."""
