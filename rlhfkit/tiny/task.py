"""The embedded "reviews" task: write a short review of a film, book, restaurant or product.

Its gold judge is VADER's sentiment score of the response, so "better" means "more positive", as in the DPO
paper's IMDb experiment. Two named gold criteria pull against each other for multi-criteria labels: "positive"
(the same VADER score) and "brief" (minus the number of words): a longer review has room for more positive
sentences (on 512 samples of the SFT'd embedded default, VADER and word count correlate at +0.21 by rank), and a
policy pushed towards positivity alone writes longer ones (the pipeline's PPO, DPO and RLOO all do).

Train and eval prompts name disjoint sets of items; demonstrations cover all three sentiments so that the SFT
model starts from a spread of rewards that RLHF can move.
"""

from __future__ import annotations

import random

from rlhfkit.data import Task
from rlhfkit.judges import LengthJudge, VaderJudge
from rlhfkit.tiny import corpus


def reviews_task(
    n_train_prompts: int = 1024, n_eval_prompts: int = 128, n_demonstrations: int = 2000, seed: int = 1234
) -> Task:
    """The reviews task. Sizes are capped by the number of distinct prompts the items allow."""
    rng = random.Random(seed)
    train_items, eval_items = corpus.split_items(corpus.all_items())
    train_pool = sorted({p for item in train_items for p in corpus.all_prompts_for(item)})
    eval_pool = sorted({p for item in eval_items for p in corpus.all_prompts_for(item)})
    train_prompts = rng.sample(train_pool, min(n_train_prompts, len(train_pool)))
    eval_prompts = rng.sample(eval_pool, min(n_eval_prompts, len(eval_pool)))
    demonstrations = []
    for _ in range(n_demonstrations):
        item = rng.choice(train_items)
        review = corpus.generate_review(rng, item, rng.choice(corpus.SENTIMENTS))
        demonstrations.append({"prompt": corpus.prompt_for(rng, item), "completion": review})
    return Task(
        name="reviews",
        train_prompts=train_prompts,
        eval_prompts=eval_prompts,
        demonstrations=demonstrations,
        gold_judge=VaderJudge(),
        description="Write a short review; gold reward = VADER compound sentiment of the response (-1..1).",
        gold_criteria={"positive": VaderJudge(), "brief": LengthJudge("words", target=0)},
    )
