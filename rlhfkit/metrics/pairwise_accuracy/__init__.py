"""The `evaluate` module pairwise_accuracy; its script is pairwise_accuracy.py.

Load it with rlhfkit.evaluation.load_metric("pairwise_accuracy")."""
