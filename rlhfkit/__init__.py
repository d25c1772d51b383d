"""rlhfkit: a workbench for seeing RLHF work, from SFT to PPO and DPO, on a model you can run.

The package is layered; each floor imports only from the floors below it (tests/test_layers.py checks it):
  0. _renamed, cache, threads      old names kept for a release after a rename; the model cache (built once,
                                   locked, verified); CPU threads. They import nothing from rlhfkit: every floor
                                   can use them
  1. data (errors, tables, preferences, rankings, tasks), judges, metrics, runs, figures, results, conclusions,
     tiny (corpus, build, cache)
                                   tasks and preference data; gold judges and simulated annotators; the metric
                                   computations; the run directory; plot helpers; the one schema of a policy's
                                   measured row; conclusions stated from those numbers; the embedded default's
                                   builder
  2. models, sampling, tiny.task   loading models by name, path, GGUF file or Hub id (the short names "tiny" and
                                   "smollm2-135m"); candidates per prompt; the reviews task
  3. tasks (the task registry), train (sft, reward, dpo, online, ppo), labeling (store, widgets, ai, llm_judge,
     agreement), evaluation, compare
                                   load_task by name; the training stages; labels by people, AI annotators and an
                                   LLM judge; gold/proxy reward, KL, win rates; comparison figures, tables and the
                                   report
  4. stages, live                  one function per pipeline step (used by the pipeline, the CLI and the
                                   notebooks); the live dashboard
  5. pipeline, rounds, criteria,  the whole pipeline in one call; iterated rounds of labelling and training;
     notebook                      a reward model per criterion and the frontier of their weightings; the
                                   notebooks' shared set-up
  6. cli                           `rlhfkit ...`
Two names are resolved on first use instead of imported at the top: `rlhfkit.data.load_task` (deprecated) is
`rlhfkit.tasks.load_task`, and `rlhfkit.tiny.reviews_task` is `rlhfkit.tiny.task.reviews_task` (so that loading a
model, which imports the builder in `rlhfkit.tiny`, does not load the task's modules).
"""

__version__ = "0.1.0"
