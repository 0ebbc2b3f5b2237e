"""Loss and the jitted training step (pure functions of an explicit state pytree)."""
import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int

from neurojax.nn.loss import distillation_loss, next_token_loss
from neurojax.train.sharding import logits_sharding as logits_spec

TrainState = dict  # {"params", "opt_state", "step" (int32 scalar), "rng" (PRNG key data)}


def init_train_state(model: Any, optimizer: optax.GradientTransformation, seed: int, seq_len: int,
                     params: Any = None) -> TrainState:
    """Fresh parameters (or the given `params`) and optimizer state from `seed`; the step RNG derives from it too."""
    from neurojax.nn import init_params

    init_rng, step_rng = jax.random.split(jax.random.PRNGKey(seed))
    if params is None:
        params = init_params(model, init_rng, seq_len)
    return {"params": params, "opt_state": optimizer.init(params),
            "step": jnp.zeros((), jnp.int32), "rng": step_rng}


@dataclasses.dataclass(frozen=True)
class Distillation:
    """A teacher whose logits the student matches: `kl_weight * distillation_loss(student, teacher, temperature)`."""

    model: Any
    params: Any
    kl_weight: float
    temperature: float = 1.0
    params_sharding: Any = None  # the teacher parameters' shardings on a mesh (None: one device)


def make_train_step(model: Any, optimizer: optax.GradientTransformation, state_sharding: Any = None,
                    batch_sharding: Any = None, distill: Optional[Distillation] = None) -> Callable:
    """`train_step(state, batch [B, T+1] int32) -> (state, metrics)`, jitted, state donated.

    With shardings (`neurojax.train.sharding`), the step is compiled for the mesh: the state keeps
    its sharding from step to step, the logits are constrained to (batch, -, vocab over tensor)
    (`sharding.logits_sharding`), and the metrics come back replicated. With `distill`, the loss adds
    the KL to the teacher's logits (metrics `ce` and `kl` beside the total `loss`); the teacher's
    parameters are an argument of the compiled step, never constants folded into it."""
    logits_sharding = None if batch_sharding is None else logits_spec(batch_sharding.mesh)

    def constrain(logits):
        return logits if logits_sharding is None else jax.lax.with_sharding_constraint(logits, logits_sharding)

    def loss_fn(params, batch, teacher_params):
        logits = constrain(model.apply({"params": params}, batch[:, :-1])[0])
        ce, _ = next_token_loss(logits, batch[:, 1:])
        if distill is None:
            return ce, {}
        teacher_logits = constrain(distill.model.apply({"params": teacher_params}, batch[:, :-1])[0])
        kl = distillation_loss(logits, teacher_logits, distill.temperature)
        return ce + distill.kl_weight * kl, {"ce": ce, "kl": kl}

    def step(state: TrainState, batch: Int[Array, "B T1"], teacher_params: Any):
        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], batch, teacher_params)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **parts}
        return {"params": params, "opt_state": opt_state, "step": state["step"] + 1, "rng": state["rng"]}, metrics

    if distill is None:  # a plain jitted function, so callers can `.lower` it (mesh_probe does)
        def plain(state, batch):
            return step(state, batch, None)
        if state_sharding is None:
            return jax.jit(plain, donate_argnums=0)
        return jax.jit(plain, in_shardings=(state_sharding, batch_sharding),
                       out_shardings=(state_sharding, None), donate_argnums=0)
    if state_sharding is None:
        jitted = jax.jit(step, donate_argnums=0)
    else:
        jitted = jax.jit(step, in_shardings=(state_sharding, batch_sharding, distill.params_sharding),
                         out_shardings=(state_sharding, None), donate_argnums=0)

    def train_step(state: TrainState, batch: Int[Array, "B T1"]):
        return jitted(state, batch, distill.params)

    return train_step
