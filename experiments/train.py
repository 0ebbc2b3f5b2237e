"""Train (or resume) a MatMul-free or hybrid (SpikingBrain) LM.

    python -m experiments.train --workdir=workdir/tiny
    python -m experiments.train --workdir=workdir/fp --config.model.full_precision=True
    python -m experiments.train --workdir=workdir/mine --data=notes.txt,books/

Running the same command again resumes from the latest checkpoint in --workdir and
continues bit-identically; Ctrl-C saves a checkpoint before exiting. On several devices the
config's `mesh` section lays the run out (`--config.mesh.fsdp=4 --config.mesh.tensor=2`, see
`neurojax.train.sharding`); on several hosts, add `--coordinator_address`, `--num_processes` and
`--process_id` (see `neurojax.train.distributed`).
"""
from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.train import train
from neurojax.train.distributed import initialize, is_lead

_CONFIG = _cli.define_config()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, config.json, metrics.jsonl, loss.png.")
_DATA = flags.DEFINE_string("data", None, "Comma-separated text files or directories to train on "
                            "(default: the config's data.source, the Python stdlib corpus).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-process runs: host:port of process 0 "
                                   "(see neurojax.train.distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process runs: how many processes (hosts).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process runs: this process's index, 0 .. n - 1.")
_STOP_AFTER = flags.DEFINE_integer("stop_after_steps", None, "End this invocation after N steps with a checkpoint "
                                   "(as a preemption would); rerun to resume.")


def main(argv):
    if not _WORKDIR.value:
        raise NeurojaxError("--workdir is required")
    if _STOP_AFTER.value is not None and _STOP_AFTER.value <= 0:
        raise NeurojaxError(f"--stop_after_steps must be positive, got {_STOP_AFTER.value}")
    initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    cfg = _cli.config_value(_CONFIG)
    if _DATA.value:
        cfg.data.source = _DATA.value
    summary = train(cfg, _WORKDIR.value, stop_after_steps=_STOP_AFTER.value, log=_cli.say)
    if summary["finished"] and is_lead():
        v = summary["validation"]
        _cli.say(f"done: step {summary['step']}, validation loss {v['loss']:.4f}, "
                 f"{v['bits_per_byte']:.4f} bits/byte, perplexity {v['perplexity']:.3f}")
    elif summary["interrupted"]:
        raise SystemExit(1)


if __name__ == "__main__":
    _cli.run(main)
