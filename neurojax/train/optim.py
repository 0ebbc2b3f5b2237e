"""AdamW with linear warmup + cosine decay and global-norm gradient clipping."""
from typing import Any, Optional

import jax
import optax

from neurojax.errors import NeurojaxError


def lr_schedule(peak_lr: float, warmup_steps: int, num_steps: int, final_lr_ratio: float = 0.1) -> optax.Schedule:
    """Linear warmup from 0 to `peak_lr`, then cosine decay to `final_lr_ratio * peak_lr` at `num_steps`."""
    if warmup_steps >= num_steps:
        raise NeurojaxError(f"train.warmup_steps={warmup_steps} must be smaller than train.num_steps={num_steps}")
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=peak_lr, warmup_steps=warmup_steps,
        decay_steps=num_steps, end_value=peak_lr * final_lr_ratio)


def _decay_mask(params: Any) -> Any:
    """Weight decay on matrices only (projections, embedding); not on norms or lower bounds."""
    return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def scale_by_tree(multipliers: Any) -> optax.GradientTransformation:
    """Multiply each update by its leaf of `multipliers` (a pytree of floats shaped like the params)."""

    def update(updates, state, params=None):
        return jax.tree_util.tree_map(lambda u, m: u * m, updates, multipliers), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(train_cfg: Any, lr_multipliers: Optional[Any] = None) -> optax.GradientTransformation:
    """The optimizer described by a `config.train` section; `lr_multipliers` (a pytree of floats like the
    params, or None) scales each parameter's learning rate (its whole AdamW update, weight decay included)."""
    if train_cfg.learning_rate <= 0:
        raise NeurojaxError(f"train.learning_rate must be positive, got {train_cfg.learning_rate}")
    if train_cfg.grad_clip <= 0:
        raise NeurojaxError(f"train.grad_clip must be positive, got {train_cfg.grad_clip}")
    schedule = lr_schedule(train_cfg.learning_rate, train_cfg.warmup_steps, train_cfg.num_steps)
    return optax.chain(
        optax.clip_by_global_norm(train_cfg.grad_clip),
        optax.adamw(schedule, b1=train_cfg.b1, b2=train_cfg.b2, weight_decay=train_cfg.weight_decay,
                    mask=_decay_mask),
        *([] if lr_multipliers is None else [scale_by_tree(lr_multipliers)]),
    )
