"""Run a script as two CPU processes under `accelerate launch`, as a user would, for the multi-process tests."""

import os
import subprocess
import sys
from pathlib import Path


def launch_two_cpu_processes(script, *args, env=None, timeout=240) -> subprocess.CompletedProcess:
    """`accelerate launch` of `script` with two CPU processes, offline and one thread each (hard timeout);
    `env` adds to the environment."""
    launcher = Path(sys.executable).parent / "accelerate"
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "ACCELERATE_USE_CPU": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    flags = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    flags += ["--dynamo_backend", "no", "--main_process_port", "0"]
    cmd = [str(launcher), "launch", *flags, str(script), *map(str, args)]
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)
