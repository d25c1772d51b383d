"""The `evaluate` module win_rate; its script is win_rate.py.

Load it with rlhfkit.evaluation.load_metric("win_rate")."""
