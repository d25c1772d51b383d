"""The embedded default: a review corpus, a tokenizer and a small Llama built offline on the CPU.

from rlhfkit.tiny import default_model_path, reviews_task
path = default_model_path()      # builds on first use (about a minute), then cached
task = reviews_task()

The builder (corpus, build, cache) sits a floor below `rlhfkit.models`, which imports it to resolve the name "tiny";
the reviews task (`rlhfkit.tiny.task`) needs `rlhfkit.data` and `rlhfkit.judges` and sits a floor above them. This
package re-exports `reviews_task` on first use, so that importing the builder (and so loading a model) does not load
the task's modules.
"""

from typing import Any

from rlhfkit._renamed import renamed
from rlhfkit.tiny.build import TinySettings
from rlhfkit.tiny.cache import build_info, cache_root, default_model_path

__all__ = ["TinySettings", "build_info", "cache_root", "default_model_path", "reviews_task"]

_old_names = renamed(__name__, {"TinyConfig": "TinySettings"}, stacklevel=3)  # the old name, for one release


def __getattr__(name: str) -> Any:
    if name == "reviews_task":
        from rlhfkit.tiny.task import reviews_task

        return reviews_task
    return _old_names(name)
