"""Run by tests/test_ppo.py under `accelerate launch --num_processes 2` (on the CPU): two PPO steps of the tiny
model, so that the test can check that two processes really ran and logged the same metrics as one. With
`judge-fails-on-rank-1`, the reward function raises on process 1 in step 2 (process 0 then sees its peer vanish).

    python ppo_two_process_script.py RUN_DIR [judge-fails-on-rank-1]
"""

import os
import sys

from rlhfkit.judges import VaderJudge
from rlhfkit.tiny import reviews_task
from rlhfkit.train.ppo import PPOSettings, train_ppo


def main() -> None:
    from accelerate import PartialState

    run_dir = sys.argv[1]
    print(f"launched rank={os.environ.get('RANK')} world_size={os.environ.get('WORLD_SIZE')}", flush=True)
    settings = PPOSettings(
        total_steps=2,
        batch_size=8,
        max_new_tokens=16,
        num_ppo_epochs=1,
        num_mini_batches=1,
        save_every=1,
        progress=False,
        device="cpu",
    )
    judge = VaderJudge()
    if sys.argv[2:] == ["judge-fails-on-rank-1"]:
        calls = []

        def judge_failing_on_rank_1(prompts, responses):
            calls.append(1)
            if os.environ.get("RANK") == "1" and len(calls) == 2:
                raise ValueError("the judge broke on process 1")
            return VaderJudge()(prompts, responses)

        judge = judge_failing_on_rank_1
    run = train_ppo("tiny", judge, reviews_task().train_prompts[:64], settings, run_dir=run_dir)
    # What accelerate itself saw (train_ppo made the Accelerator): every set-up mistake silently gives 1 process.
    state = PartialState()
    print(f"rank={state.process_index} num_processes={state.num_processes} done steps={len(run.metrics)}", flush=True)


if __name__ == "__main__":
    main()
