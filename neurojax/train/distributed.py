"""Several processes (hosts) training one run: `jax.distributed`, one lead process for the files.

Launch the same command on every host with its `--process_id` (see `experiments/train.py`):

    python -m experiments.train --workdir=/shared/run --coordinator_address=host0:12355 \
        --num_processes=2 --process_id=0      # on host 0; --process_id=1 on host 1

The coordinator is any reachable `host:port` of process 0. After `initialize`, `jax.devices()`
lists every process's devices, the run's mesh spans them all, and each process builds only its
own shards of every batch (`sharding.shard_batch`: the global batch of a step is a pure function
of (seed, step), so every process derives the same one). Checkpoints are written by all processes
together (orbax); config.json, metrics.jsonl, the loss plot and progress lines by the lead
process (`is_lead`) only. The workdir must be one shared filesystem. On CPU the processes talk
through gloo (set here); on GPU/TPU through the platform's collectives.
"""
from typing import Optional

import jax
from jax.experimental import multihost_utils

from neurojax.errors import NeurojaxError


def initialize(coordinator_address: Optional[str], num_processes: Optional[int], process_id: Optional[int]) -> None:
    """Join the run's processes (a no-op for a single process: all three left unset or num_processes 1)."""
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if not any(given) or num_processes == 1:
        return
    if not all(given):
        raise NeurojaxError("multi-process training needs --coordinator_address, --num_processes and --process_id")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise NeurojaxError(f"--process_id={process_id} must be in [0, --num_processes={num_processes})")
    # CPU devices talk through gloo (the setting only concerns the CPU backend; asking which
    # backend is in use would start it, and initialize must come first)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def is_lead() -> bool:
    """Whether this process writes the run's plain files and prints progress (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches this point (a no-op with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
