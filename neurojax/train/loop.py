"""The training loop: resumable bit for bit, checkpointed atomically, with progress output.

`train(cfg, workdir)` either starts a run or resumes the latest checkpoint in
`workdir`. State that defines the future of the run (params, optimizer state,
step, RNG, data position) is all in the checkpoint, and the data batch of step k
is a pure function of (seed, k), so a resumed run computes exactly the same
updates as an uninterrupted one.
"""
import json
import math
import os
import signal
import time
from typing import Any, Callable, Optional

import jax

from neurojax.errors import NeurojaxError
from neurojax.eval.lm_metrics import evaluate_lm
from neurojax.train.checkpoint import Checkpointer
from neurojax.train.data_setup import load_run_data
from neurojax.train.distributed import barrier, is_lead
from neurojax.train.metrics import MetricsLog, plot_losses
from neurojax.train.model_factory import build_model, describe, train_state_initializer
from neurojax.train.optim import make_optimizer
from neurojax.train.sharding import batch_sharding, make_mesh, shard_batch, state_shardings, with_shardings
from neurojax.train.start import load_start, load_teacher
from neurojax.train.step import make_train_step
from neurojax.train.workdir import claim_workdir

METRICS_FILE = "metrics.jsonl"
LOSS_PLOT = "loss.png"


def _format_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks, so it can checkpoint before exiting."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _silent(_msg: str) -> None:
    pass


def _mesh_note(mesh) -> str:
    if mesh.size == 1:
        return ""
    return ", mesh " + " x ".join(f"{k}={v}" for k, v in mesh.shape.items()) + f" on {mesh.size} devices"


def _train_parts(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "params"}


def train(
    cfg: Any,
    workdir: str,
    *,
    stop_after_steps: Optional[int] = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train (or resume) the run `cfg` in `workdir`; returns a summary dict.

    `stop_after_steps` ends this invocation after that many steps (with a
    checkpoint), as a preemption would; running again resumes.
    """
    model, model_cfg = build_model(cfg)  # validates every section
    t = cfg.train
    start = load_start(cfg, model_cfg)
    optimizer = make_optimizer(t, start.lr_multipliers)
    data = load_run_data(cfg)
    # The config as config.json stores it (JSON types: a tuple such as model.layer_pattern becomes a list),
    # so a resume compares like with like.
    record = json.loads(json.dumps(cfg.to_dict()))
    mesh = make_mesh(record.pop("mesh", None))  # how the run executes, not part of its identity
    new_state = train_state_initializer(model, model_cfg, optimizer, t.seed, t.seq_len, start.params)
    abstract = jax.eval_shape(new_state)
    shardings = state_shardings(abstract, mesh)  # every divisibility check before anything is written
    batches = batch_sharding(mesh, t.batch_size)
    distill = load_teacher(cfg, model_cfg, mesh)
    lead = is_lead()
    if lead:
        claim_workdir(workdir, record)  # only after every input check has passed
    else:
        log = _silent
    barrier("claim_workdir")
    ckpt = Checkpointer(workdir, max_to_keep=t.keep_checkpoints)
    metrics = MetricsLog(os.path.join(workdir, METRICS_FILE), enabled=lead)

    latest = ckpt.latest_step()
    if latest is None:
        state = jax.jit(new_state, out_shardings=shardings)()  # created sharded: no full copy on one device
        data_state = None
        log(f"new run in {workdir}: {model_cfg.num_layers} layers, d={model_cfg.d_model}, "
            f"{describe(model_cfg)}, data {data.name}{_mesh_note(mesh)}{start.note}")
    else:
        target = with_shardings(abstract, shardings)  # restored straight onto this run's mesh
        params, rest, meta = ckpt.restore(target["params"], _train_parts(target))
        if meta.get("data_fingerprint") != data.fingerprint:
            raise NeurojaxError(f"the training data changed since the checkpoint in {workdir!r} "
                                f"(fingerprint {meta.get('data_fingerprint')} -> {data.fingerprint})")
        state = {"params": params, **rest}
        data_state = meta["data_state"]
        metrics.truncate_after(latest)
        log(f"resumed {workdir} at step {latest}{_mesh_note(mesh)}")
    iterator = data.iterator(t.batch_size, t.seq_len, t.seed, data_state)
    train_step = make_train_step(model, optimizer, shardings, batches, distill)
    if distill is not None:
        log(f"distilling from {cfg.distill.teacher}: loss = LM + {distill.kl_weight:g} x KL at temperature "
            f"{distill.temperature:g}")

    def save(step_now: int) -> None:
        meta = {"step": step_now, "data_state": iterator.state(), "data_fingerprint": data.fingerprint,
                "config": record}
        ckpt.save(step_now, state["params"], _train_parts(state), meta)

    def evaluate(step_now: int) -> dict:
        result = evaluate_lm(model, {"params": state["params"]}, data.validation, data.byte_lengths)
        metrics.write({"step": step_now, "val_loss": result["loss"], "val_bits_per_byte": result["bits_per_byte"]})
        log(f"step {step_now}: validation loss {result['loss']:.4f}, {result['bits_per_byte']:.4f} bits/byte")
        return result

    step = int(jax.device_get(state["step"]))
    first = step
    end = t.num_steps if stop_after_steps is None else min(t.num_steps, step + stop_after_steps)
    tokens_per_step = t.batch_size * t.seq_len
    window_start, window_step = time.perf_counter(), step
    loss = None
    val = None
    with _StopRequest() as stop:
        while step < end:
            state, m = train_step(state, shard_batch(next(iterator), batches))
            step += 1
            if step % t.log_every == 0 or step == end:
                values = {k: float(v) for k, v in jax.device_get(m).items()}
                loss = values["loss"]
                if not math.isfinite(loss):
                    raise NeurojaxError(f"loss became {loss} at step {step}; last checkpoint kept. "
                                        f"Lower train.learning_rate or check the data")
                now = time.perf_counter()
                tok_s = (step - window_step) * tokens_per_step / max(now - window_start, 1e-9)
                window_start, window_step = now, step
                metrics.write({"step": step, **values, "tokens_per_s": tok_s})
                eta = (t.num_steps - step) * tokens_per_step / max(tok_s, 1e-9)
                parts = "".join(f"  {k} {values[k]:.4f}" for k in ("ce", "kl") if k in values)
                log(f"step {step}/{t.num_steps}  loss {loss:.4f}{parts}  {tok_s:,.0f} tok/s  ETA {_format_eta(eta)}")
            if t.eval_every and step % t.eval_every == 0 and step != t.num_steps:
                evaluate(step)
                window_start = time.perf_counter()  # tokens/s counts training steps only
            if step % t.checkpoint_every == 0 or step == end or stop.requested:
                save(step)
                window_start = time.perf_counter()
            if stop.requested:
                log(f"stopped by signal at step {step}; checkpoint saved, run again to resume")
                break
    if step == t.num_steps:
        val = evaluate(step)
        if lead:
            plot_losses([("train", metrics.path)], os.path.join(workdir, LOSS_PLOT),
                        title=f"{data.name}: {describe(model_cfg)}")
    ckpt.close()
    return {"step": step, "num_steps": t.num_steps, "started_at": first, "train_loss": loss,
            "validation": val, "finished": step == t.num_steps, "interrupted": step < end}
