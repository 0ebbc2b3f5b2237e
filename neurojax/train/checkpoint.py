"""Orbax checkpoints of a training run: atomic, synchronous, restorable in part.

Layout: `<workdir>/checkpoints/<step>/{params,train,meta}`. `params` alone is
enough for generation and evaluation; `train` holds optimizer state, step and
RNG; `meta` (JSON) holds the data-iterator position and the run's config.
Orbax writes each step into a temporary directory and renames it when complete,
so a killed run never leaves a half-written step that looks finished.
"""
import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from neurojax.errors import NeurojaxError


def _abstract(tree: Any) -> Any:
    return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
    """Saves and restores `{params, train, meta}` under `<workdir>/checkpoints`."""

    def __init__(self, workdir: str, max_to_keep: Optional[int] = 3, read_only: bool = False):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        if read_only and not os.path.isdir(self.directory):
            raise NeurojaxError(f"no checkpoint in {workdir!r}: train one first with experiments/train.py "
                                f"--workdir={workdir}")
        # `read_only` here means "open an existing run to load from"; orbax's own read-only
        # mode only adds warnings, so it is expressed as: create nothing, delete nothing.
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else max_to_keep, create=not read_only,
            enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, params: Any, train: Any, meta: dict) -> None:
        """Write step `step` (blocking); an existing step is never overwritten."""
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params), train=ocp.args.StandardSave(train),
            meta=ocp.args.JsonSave(meta)), force=True)
        self._manager.wait_until_finished()

    def restore_meta(self, step: Optional[int] = None) -> dict:
        step = self._step(step)
        return self._restore(step, meta=ocp.args.JsonRestore())["meta"]

    def restore(self, abstract_params: Any, abstract_train: Optional[Any] = None,
                step: Optional[int] = None) -> tuple[Any, Optional[Any], dict]:
        """Return `(params, train or None, meta)` of `step` (default: the latest)."""
        step = self._step(step)
        items = {"params": ocp.args.StandardRestore(_abstract(abstract_params)), "meta": ocp.args.JsonRestore()}
        if abstract_train is not None:
            items["train"] = ocp.args.StandardRestore(_abstract(abstract_train))
        out = self._restore(step, **items)
        return out["params"], out.get("train"), out["meta"]

    def _step(self, step: Optional[int]) -> int:
        steps = self.all_steps()
        if not steps:
            raise NeurojaxError(f"no checkpoint in {self.directory!r}")
        if step is None:
            return max(steps)
        if step not in steps:
            raise NeurojaxError(f"no checkpoint for step {step} in {self.directory!r}; available: {sorted(steps)}")
        return step

    def _restore(self, step: int, **items) -> Any:
        try:
            return self._manager.restore(step, args=ocp.args.Composite(**items))
        except NeurojaxError:
            raise
        except Exception as e:  # orbax/tensorstore raise many types for unreadable files
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise NeurojaxError(
                f"checkpoint step {step} in {self.directory!r} is unreadable or does not match this "
                f"model ({type(e).__name__}: {first}); it was left untouched") from e

    def close(self) -> None:
        self._manager.close()
