"""rlhfkit: a workbench for seeing RLHF work, from SFT to PPO and DPO, on a model you can run.

The package is layered; each floor imports only from the floors below it (tests/test_layers.py checks it):
  1. data (errors, tables, preferences, rankings, tasks), models, judges, metrics, runs, threads, figures,
     results, conclusions
                                   tasks and preference data; loading models; gold judges and simulated annotators;
                                   the metric computations; the run directory; CPU threads; plot helpers; the one
                                   schema of a policy's measured row; conclusions stated from those numbers
  2. sampling, tiny                candidates per prompt; the embedded default model and the reviews task
  3. tasks (the task registry), train (sft, reward, dpo, online, ppo), labeling (store, widgets, ai, llm_judge,
     agreement), evaluation, compare
                                   load_task by name; the training stages; labels by people, AI annotators and an
                                   LLM judge; gold/proxy reward, KL, win rates; comparison figures, tables and the
                                   report
  4. stages, live                  one function per pipeline step (used by the pipeline, the CLI and the
                                   notebooks); the live dashboard
  5. pipeline, notebook            the whole pipeline in one call; the notebooks' shared set-up
  6. cli                           `rlhfkit ...`
`rlhfkit._renamed` (old names kept for a release after a rename) imports only the standard library and serves every
floor. Two names are resolved at call time instead of imported: `rlhfkit.data.load_task` (deprecated) is `rlhfkit.tasks.load_task`,
and `rlhfkit.models` finds the model "tiny" in `rlhfkit.tiny.cache` by name.
"""

__version__ = "0.1.0"
