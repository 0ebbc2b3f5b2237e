"""Loss and the jitted training step (pure functions of an explicit state pytree)."""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int

from neurojax.nn.loss import next_token_loss
from neurojax.train.sharding import logits_sharding as logits_spec

TrainState = dict  # {"params", "opt_state", "step" (int32 scalar), "rng" (PRNG key data)}


def init_train_state(model: Any, optimizer: optax.GradientTransformation, seed: int, seq_len: int) -> TrainState:
    """Fresh parameters and optimizer state from `seed`; the step RNG derives from it too."""
    from neurojax.nn import init_params

    init_rng, step_rng = jax.random.split(jax.random.PRNGKey(seed))
    params = init_params(model, init_rng, seq_len)
    return {"params": params, "opt_state": optimizer.init(params),
            "step": jnp.zeros((), jnp.int32), "rng": step_rng}


def make_train_step(model: Any, optimizer: optax.GradientTransformation, state_sharding: Any = None,
                    batch_sharding: Any = None) -> Callable:
    """`train_step(state, batch [B, T+1] int32) -> (state, metrics)`, jitted, state donated.

    With shardings (`neurojax.train.sharding`), the step is compiled for the mesh: the state keeps
    its sharding from step to step, the logits are constrained to (batch, -, vocab over tensor)
    (`sharding.logits_sharding`), and the metrics come back replicated."""
    logits_sharding = None if batch_sharding is None else logits_spec(batch_sharding.mesh)

    def loss_fn(params, batch):
        logits, _ = model.apply({"params": params}, batch[:, :-1])
        if logits_sharding is not None:
            logits = jax.lax.with_sharding_constraint(logits, logits_sharding)
        loss, _ = next_token_loss(logits, batch[:, 1:])
        return loss

    def train_step(state: TrainState, batch: Int[Array, "B T1"]):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], batch)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        return {"params": params, "opt_state": opt_state, "step": state["step"] + 1, "rng": state["rng"]}, metrics

    if state_sharding is None:
        return jax.jit(train_step, donate_argnums=0)
    return jax.jit(train_step, in_shardings=(state_sharding, batch_sharding), out_shardings=(state_sharding, None),
                   donate_argnums=0)
