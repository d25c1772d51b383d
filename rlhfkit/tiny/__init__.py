"""The embedded default: a review corpus, a tokenizer and a small Llama built offline on the CPU.

from rlhfkit.tiny import default_model_path, reviews_task
path = default_model_path()      # builds on first use (about a minute), then cached
task = reviews_task()
"""

from rlhfkit._renamed import renamed
from rlhfkit.tiny.build import TinySettings
from rlhfkit.tiny.cache import build_info, cache_root, default_model_path
from rlhfkit.tiny.task import reviews_task

__all__ = ["TinySettings", "build_info", "cache_root", "default_model_path", "reviews_task"]

__getattr__ = renamed(__name__, {"TinyConfig": "TinySettings"})  # the old name, for one release
