# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Extend a module from a notebook cell
#
# The LM's parts are chosen by name from registries (`neurojax.nn.registry`): token mixers,
# channel mixers, linear layers, activation quantizers and spiking neurons. Here we define a new
# token mixer (a minimal gated linear recurrence) and a new spiking neuron (an integrate-and-fire
# neuron that can send a burst of up to two spikes per step), register them, and train each with
# `neurojax.train.train`, the function behind `python -m experiments.train`, next to the built-in
# part it replaces. Nothing in the package is edited. About two minutes on a 2-core CPU;
# `NEUROJAX_NOTEBOOK_SMALL=1` trains 30 steps per run instead of 200.

# %%
import math
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from neurojax.kernels.linear_recurrence import linear_recurrence

import neurojax.nn as nj
from neurojax.data import ByteTokenizer
from neurojax.inference import SamplingConfig, generate
from neurojax.nn import NEURONS, TOKEN_MIXERS, make_linear
from neurojax.nn.quantizers import neuron_quantizer
from neurojax.notebook import fresh_workdir, show, small_settings
from neurojax.spiking.surrogate import spike_fn
from neurojax.train import load_trained, run_config, train
from neurojax.train.metrics import read_metrics

SMALL = small_settings()
ROOT = fresh_workdir("nb02")
started = time.time()



# %% [markdown]
# ## A new token mixer
# A token mixer is a `linen` module built as `cls(config=..., layer_index=..., name="attn")` and
# called as `(x [B,T,d], state, mask, lower_bound) -> (y, state)`, with a static
# `initial_state(config, batch_size)`. Projections come from `make_linear`, so the mixer is
# ternary (MatMul-free) by default and follows `model.linear` like the built-in ones.
# `overwrite=True` lets the cell run twice.

# %%
@TOKEN_MIXERS.register("min_gate", overwrite=True)
class MinGate(nn.Module):
    """`h_t = f_t h_{t-1} + (1 - f_t) c_t`, `y = o_proj(h)`: a minimal gated linear recurrence."""

    config: object
    layer_index: int = 0

    @staticmethod
    def initial_state(config, batch_size):
        return jnp.zeros((batch_size, config.d_model))

    @nn.compact
    def __call__(self, x, state, mask=None, lower_bound=None):
        cfg = self.config
        f = jax.nn.sigmoid(make_linear(cfg, cfg.d_model, "f_proj")(x))
        c = make_linear(cfg, cfg.d_model, "c_proj")(x) * (1 - f)
        if mask is not None:
            c = c * mask[..., None]
        h, h_last = linear_recurrence(f, c, state)
        return make_linear(cfg, cfg.d_model, "o_proj")(h), h_last


# %% [markdown]
# ## A new spiking neuron
# A neuron is a `linen` module usable as `cls()`, with `initial_state(shape)` and
# `(x_seq [T, ...], state) -> (spikes [T, ...], state)`. The LM uses one through the `"neuron"`
# activation quantizer: each projection input `y` drives the neuron for `neuron_steps` steps with
# the current `|y| / (T V_th)` (`V_th = mean|y| / k`), and the signed spike count is the code.
# The built-in integrate-and-fire neuron sends at most one spike per step, so its counts saturate
# at `T`; `BurstIF` may send two, so it saturates at `2T`. Its spike function has a surrogate
# gradient (`spike_fn`), so it trains inside the LM.

# %%
@NEURONS.register("burst_if", overwrite=True)
class BurstIF(nn.Module):
    """Integrate-and-fire with bursts: `s = H(v - th) + H(v - 2 th)` spikes per step, `v -= th * s`."""

    threshold: float = 1.0
    max_burst: int = 2

    def initial_state(self, shape):
        return jnp.zeros(shape, jnp.float32)

    def __call__(self, x_seq, v):
        spike = spike_fn("fast_sigmoid")

        def step(v, x):
            v = v + x
            s = sum(spike(v - (i + 1) * self.threshold) for i in range(self.max_burst))
            return v - self.threshold * jax.lax.stop_gradient(s), s

        v, s_seq = jax.lax.scan(step, v, x_seq)
        return s_seq, v


STEPS = 4  # neuron_steps of the runs below: IF codes saturate at 4, BurstIF codes at 8


def probe_codes(neuron):
    """Codes of one token `y = -8..8` (k = 8, so that |y| / V_th spans 0..15 threshold units)."""
    probe_cfg = nj.preset("micro", quantizer="neuron", neuron=neuron, neuron_steps=STEPS, spike_k=8.0)
    y = jnp.linspace(-8.0, 8.0, 17)[None]
    q, v_th = neuron_quantizer(y, probe_cfg)
    return np.asarray(y[0] / v_th[0]), np.asarray(q[0]).astype(int)


for name in ("if", "burst_if"):
    units, q = probe_codes(name)
    print(f"{name:9s} codes:", q.tolist())
print("threshold units:", [round(float(u), 1) for u in units])

# %% [markdown]
# ## Train the four variants through the library
# The same narrowed tiny config for all; only `model.token_mixer` or `model.quantizer` /
# `model.neuron` change. Because they are names in the `ml_collections` config, the runs'
# `config.json` records them, and `load_trained` rebuilds the models (as long as the notebook
# has registered them).

# %%
def run(name, **model_fields):
    cfg = run_config("tiny")
    cfg.model.update(d_model=64, num_layers=2, intermediate_size=128, **model_fields)
    cfg.train.update(num_steps=30 if SMALL else 200, batch_size=8, seq_len=64, warmup_steps=5 if SMALL else 20,
                     log_every=5 if SMALL else 20, eval_every=0, eval_batches=2, checkpoint_every=10**6)
    workdir = os.path.join(ROOT, name)
    summary = train(cfg, workdir, log=lambda line: None)
    records = [r for r in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "loss" in r]
    print(f"{name:22s} validation loss {summary['validation']['loss']:.3f}  ({time.time() - started:.0f} s)")
    return workdir, summary["validation"]["loss"], [r["step"] for r in records], [r["loss"] for r in records]


runs = {
    "mlgru (built-in)": run("mlgru"),
    "min_gate (notebook)": run("min_gate", token_mixer="min_gate"),
    "if neuron (built-in)": run("if", quantizer="neuron", neuron="if", neuron_steps=STEPS),
    "burst_if (notebook)": run("burst_if", quantizer="neuron", neuron="burst_if", neuron_steps=STEPS),
}

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
for ax, names, title in ((axes[0], list(runs)[:2], "token mixer"), (axes[1], list(runs)[2:], "spiking neuron codes")):
    for name in names:
        _, val, steps, losses = runs[name]
        ax.plot(steps, losses, label=f"{name}: val {val:.3f}")
    ax.axhline(math.log(259), color="gray", ls="--", lw=1)
    ax.set(xlabel="step", title=title)
    ax.legend()
axes[0].set_ylabel("train loss (nats)")
show(fig)

# %% [markdown]
# ## The custom mixer is a full citizen
# Restored from its workdir, packed to 2-bit weights for decoding, and generating with its
# fixed-size state, exactly as the built-in model would.

# %%
trained = load_trained(runs["min_gate (notebook)"][0])
param_names = sorted(trained.params["layers_0"]["attn"])
variables = nj.inference_variables(trained.model, trained.params)
tok = ByteTokenizer()
out = generate(trained.model, variables, tok.encode("def ")[None], 60, jax.random.PRNGKey(0),
               SamplingConfig(temperature=0.8, top_k=20))
print("attn parameters:", param_names)
print("def " + tok.decode(np.asarray(out[0])))
print(f"notebook time: {time.time() - started:.0f} s")

# %% [markdown]
# ## Checks

# %%
units, q_if = probe_codes("if")
_, q_burst = probe_codes("burst_if")
assert q_if.max() == STEPS and q_burst.max() == 2 * STEPS  # the burst doubles the range
small = np.abs(units) < STEPS  # below saturation both give sign(y) * floor(|y| / V_th)
np.testing.assert_array_equal(q_if[small], q_burst[small])
for name, (_, val, steps, losses) in runs.items():
    assert val < math.log(259) - 0.5, (name, val)  # every variant learned
    assert losses[-1] < losses[0], (name, losses)
assert param_names == ["c_proj", "f_proj", "o_proj"]
assert "quantized" in variables and out.shape == (1, 60)
print("all checks passed")
