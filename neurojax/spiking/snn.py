"""A two-layer spiking MLP trained with surrogate gradients, with interchangeable fast paths.

The network of the SHD-like training benchmark (`experiments/bench_snn.py`), time-major:

    x [T, B, n_in] (float, spikes in {0, 1})
    I1 = x @ W1^T        (W1 [hidden, n_in], no bias)   -> LIF -> s1 [T, B, hidden]
    I2 = s1 @ W2^T       (W2 [n_out, hidden], no bias)  -> LIF -> s2 [T, B, n_out]
    loss = mean over the batch of softmax cross-entropy(sum_t s2, label)

Both LIFs are `neurojax.spiking.neurons.LIF` with decay_u = 0 (current-free: u = x), decay_v =
beta, zero bias and a zero initial state, in one of its update orders (`SNNConfig.order`:
"snntorch" as snnTorch's `Leaky`, "spyx" as Spyx's `LIF`, or neurojax's own; the neurons
module doc defines each). The spike is the Heaviside step with a named surrogate derivative
(default fast sigmoid, slope 25: `1 / (1 + 25 |v - threshold|)^2`).

Implementations (`impl=`), one module API (`SpikingMLP`, or the pure `forward` / `loss` /
`make_train_step` on a params dict `{"fc1": {"weight"}, "fc2": {"weight"}}`, PyTorch layout):

  "reference"  the definition: one `lax.scan` over time whose body is Linear -> `LIF.step` ->
               Linear -> `LIF.step`; gradients by JAX autodiff through the scan.
  "hoisted"    each projection leaves the time loop: one `[T*B, n_in] x [n_in, hidden]` matmul
               for the whole sequence, then the LIF module's scan; autodiff.
  "fused"      hoisted projections and a LIF scan with a hand-written VJP (`lif_sequence`): the
               forward scan keeps only the membrane trace v [T, B, N]; the backward is one
               reverse scan of the linear recurrence
                   a_t = e_t + c_t a_{t+1},   dL/dI_t = a_t,
               where e_t = g_t * dL/ds_t (spyx order: g_t * dL/ds_{t+1}, its spike reads the
               previous membrane), g_t = surrogate'(v_t - threshold), and c_t = dv_{t+1}/dv_t:
               beta with a detached subtractive reset; beta - threshold g_t (snntorch, spyx)
               or beta (1 - threshold g_t) (neurojax) when the reset is not detached; with
               reset="zero" beta (1 - H_t) minus beta v_t g_t when not detached.
  "chunked"    (the default) the whole network under one hand-written VJP, layer 1 in chunks
               of `CHUNK_STEPS` = 5 time steps: per chunk one `[5 B, n_in] x [n_in, hidden]`
               event-driven product (`kernels.event_matmul`: on CPU only the weight rows of
               inputs that fired are added, 5% of them on the workload), the LIF scan of the
               chunk and its `[5 B, hidden] x [hidden, n_out]` layer-2 currents; then the small
               layer-2 LIF over the whole sequence. The backward runs layer 2's reverse scan,
               then layer 1's chunks in reverse: spikes recomputed from the trace for dW2,
               `a2 @ W2`, the reverse LIF scan, and `dW1^T += x_c^T a1` per chunk (event-driven
               too, `event_matmul_t`: a row of a1 per input event, accumulated in place). Only
               the layer-1 membrane trace is kept at full length; the currents I1, the spikes
               s1, their cotangents and dL/dI1 exist one chunk at a time (less memory: with 5
               steps the peak is below Spyx's at every scaling point, where 10 was 3% above it at
               T = 50). A T that no chunk length in [3, 5] divides is padded at the end with zero
               input (causal: earlier outputs are unchanged, the padded steps carry no gradient).
Every fast path gives spikes bit-identical to the reference's when the matmuls are exact
(same float32 LIF operations in the same order; `tests/spiking/test_snn_train.py` uses
dyadic weights), gradients equal to float32 round-off; on the workload the step-0 losses
match the float64 NumPy loss (`loss_float64`) to ~1e-6.

Measured on the 2-core CPU (`python -m experiments.bench_snn` prints the figures): as dense
matmuls the two input-layer products (forward and dW1, 2.3 GFLOP each at T=100, H=256) are
most of a training step. In XLA an event-driven first layer (gather-sum of the active inputs'
weight columns) was 10-20x slower than the dense matmul (XLA's CPU gather and scatter run
element by element); the native `event_matmul` kernel does the same work 3-6x faster than the
dense matmul, so "chunked" uses it (elsewhere it falls back to the dense dot). Summed in event
order, its float32 results differ from a dot by round-off only (exactly equal with dyadic
weights). No GPU path (Pallas) is offered: none was measured.
"""
import dataclasses
import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from neurojax.errors import NeurojaxError
from neurojax.kernels.event_matmul import event_matmul, event_matmul_t
from neurojax.spiking.neurons import LIF, ORDERS, RESETS
from neurojax.spiking.surrogate import get_surrogate, heaviside

IMPLS = ("reference", "hoisted", "fused", "chunked")


@dataclasses.dataclass(frozen=True)
class SNNConfig:
    """Sizes and neuron constants of the spiking MLP (defaults: the SHD-like workload).

    detach_reset: stop the gradient through the reset (snnTorch always does; Spyx never does,
    so compare with Spyx at `detach_reset=False`).
    """

    n_in: int = 700
    hidden: int = 256
    n_out: int = 20
    beta: float = 0.9
    threshold: float = 1.0
    surrogate: str = "fast_sigmoid"
    slope: float = 25.0
    compare: str = ">"
    order: str = "snntorch"
    reset: str = "subtract"
    detach_reset: bool = True

    def __post_init__(self):
        for name in ("n_in", "hidden", "n_out"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise NeurojaxError(f"SNNConfig.{name} must be a positive int, got {v!r}")
        if not isinstance(self.detach_reset, bool):
            raise NeurojaxError(f"SNNConfig.detach_reset must be a bool, got {self.detach_reset!r}")
        self.lif()  # validates beta, threshold (> 0), surrogate, slope, compare, order, reset

    def lif(self) -> LIF:
        """The neuron module both layers use (its own checks raise NeurojaxError)."""
        return LIF(decay_u=0.0, decay_v=self.beta, threshold=self.threshold, bias=0.0, reset=self.reset,
                   surrogate=self.surrogate, slope=self.slope, compare=self.compare,
                   detach_reset=self.detach_reset, order=self.order)


# ----------------------------------------------------------------------------- the workload


def workload_params(config: SNNConfig = SNNConfig(), seed: int = 2) -> dict:
    """The benchmark's weights: `rng = default_rng(seed)`; W1 = U(-1, 1) * 4 / sqrt(n_in), then
    W2 = U(-1, 1) * 3 / sqrt(hidden), float32, PyTorch layout `[out, in]`."""
    rng = np.random.default_rng(seed)
    w1 = rng.uniform(-1, 1, (config.hidden, config.n_in)) * 4 / np.sqrt(config.n_in)
    w2 = rng.uniform(-1, 1, (config.n_out, config.hidden)) * 3 / np.sqrt(config.hidden)
    return {"fc1": {"weight": jnp.asarray(w1, jnp.float32)}, "fc2": {"weight": jnp.asarray(w2, jnp.float32)}}


def workload_inputs(steps: int, batch: int, n_in: int = 700, n_out: int = 20, density: float = 0.05,
                    seed: int = 0, label_seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's data: `default_rng(seed).random((steps, batch, n_in)) < density` as float32
    (time-major) and labels `default_rng(label_seed).integers(0, n_out, size=batch)`."""
    for name, v in (("steps", steps), ("batch", batch), ("n_in", n_in), ("n_out", n_out)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise NeurojaxError(f"workload_inputs: {name} must be a positive int, got {v!r}")
    x = (np.random.default_rng(seed).random((steps, batch, n_in)) < density).astype(np.float32)
    labels = np.random.default_rng(label_seed).integers(0, n_out, size=batch)
    return x, labels


def check_inputs(x, config: SNNConfig, labels=None) -> None:
    """Raise NeurojaxError unless x is a float `[T, B, n_in]` array with T, B >= 1 (and labels, if
    given, integers of shape [B])."""
    shape, dtype = jnp.shape(x), jnp.result_type(x)
    if len(shape) != 3:
        raise NeurojaxError(f"spiking MLP input must be time-major [T, B, {config.n_in}] (rank 3), got shape {shape}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise NeurojaxError(f"spiking MLP input must be a float array of spikes in {{0, 1}}, got dtype {dtype}")
    if shape[0] == 0 or shape[1] == 0:
        raise NeurojaxError(f"spiking MLP input needs T >= 1 steps and B >= 1 samples, got shape {shape}")
    if shape[2] != config.n_in:
        raise NeurojaxError(f"spiking MLP input has {shape[2]} channels, the config expects n_in={config.n_in}")
    if labels is not None:
        lshape, ldtype = jnp.shape(labels), jnp.result_type(labels)
        if lshape != (shape[1],) or not jnp.issubdtype(ldtype, jnp.integer):
            raise NeurojaxError(f"labels must be integers of shape ({shape[1]},), got {ldtype} {lshape}")


# ----------------------------------------------------------------------------- the fused LIF scan


class _Consts(NamedTuple):
    """The static constants of a fused LIF (hashable: a `custom_vjp` non-differentiable argument)."""
    beta: float
    threshold: float
    surrogate: str
    slope: float
    compare: str
    order: str
    reset: str
    detach: bool


def _consts(config: SNNConfig) -> _Consts:
    return _Consts(float(config.beta), float(config.threshold), config.surrogate, float(config.slope),
                   config.compare, config.order, config.reset, config.detach_reset)


def _lif_run(k: _Consts, v0, currents, keep_trace: bool):
    """Forward over time from the membrane `v0`: the same float32 operations as
    `neurons.lif_step` with decay_u = 0 and bias = 0 (so the spikes are bit-identical).
    Returns `(v_last, spikes)`, with `keep_trace` `(v_last, (spikes, trace))`: the membrane the
    backward needs (neurojax order: before the reset)."""
    th, beta = k.threshold, k.beta

    def body(v_prev, i):
        if k.order == "neurojax":
            v = beta * v_prev + i
            s = heaviside(v - th, k.compare)
            nxt = v * (1.0 - s) if k.reset == "zero" else v - s * th
            return nxt, ((s, v) if keep_trace else s)
        r = heaviside(v_prev - th, k.compare)
        v = beta * (v_prev * (1.0 - r)) + i if k.reset == "zero" else beta * v_prev + i - r * th
        s = heaviside(v - th, k.compare) if k.order == "snntorch" else r
        return v, ((s, v) if keep_trace else s)

    return jax.lax.scan(body, v0, currents)


def _lif_reverse(k: _Consts, trace, ds, carry=None):
    """The backward recurrence `a_t = e_t + c_t a_{t+1}` (module doc) over a trace from
    `_lif_run`, with `ds` the cotangent of its spikes. `carry = (a_next, ds_next)` continues a
    later chunk (default zeros: the end of the sequence). Returns `(carry, a = dL/dcurrents)`."""
    th, beta = k.threshold, k.beta
    sur = get_surrogate(k.surrogate)
    spyx = k.order == "spyx"

    def body(carry, xs):
        a_next, ds_next = carry
        v, ds_t = xs
        g = sur.grad(v - th, k.slope).astype(v.dtype)
        e = g * (ds_next if spyx else ds_t)  # spyx: this membrane's spike is the next step's output
        if k.reset == "subtract":
            if k.detach:
                c = beta
            else:
                c = beta - th * g if k.order != "neurojax" else beta * (1.0 - th * g)
        else:
            c = beta * (1.0 - heaviside(v - th, k.compare))
            if not k.detach:
                c = c - beta * v * g
        a = e + c * a_next
        return (a, ds_t), a

    if carry is None:
        zero = jnp.zeros(trace.shape[1:], trace.dtype)
        carry = (zero, zero)
    return jax.lax.scan(body, carry, (trace, ds), reverse=True)


def _zeros_like_step(currents):
    return jnp.zeros(currents.shape[1:], currents.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused_lif(k: _Consts, currents):
    return _lif_run(k, _zeros_like_step(currents), currents, keep_trace=False)[1]


def _fused_lif_fwd(k: _Consts, currents):
    _, (s, trace) = _lif_run(k, _zeros_like_step(currents), currents, keep_trace=True)
    return s, trace


def _fused_lif_bwd(k: _Consts, trace, ds):
    return (_lif_reverse(k, trace, ds)[1],)


_fused_lif.defvjp(_fused_lif_fwd, _fused_lif_bwd)


# ----------------------------------------------------------------------------- the fused network

CHUNK_STEPS = 5  # time steps per chunk of the "chunked" implementation


def _chunks(steps: int, target: int | None = None) -> tuple[int, int]:
    """`(n, C)`: n chunks of C steps covering `steps` (C: the largest divisor of `steps` in
    [target / 2, target], else `target` with zero-padded steps at the end; target default
    `CHUNK_STEPS`)."""
    target = CHUNK_STEPS if target is None else target
    if steps <= target:
        return 1, steps
    for c in range(target, (target + 1) // 2 - 1, -1):
        if steps % c == 0:
            return steps // c, c
    return -(-steps // target), target


def _spikes_from_trace(k: _Consts, trace, prev):
    """The spikes of a chunk from its membrane trace; `prev` is the membrane before the chunk
    (the spyx order spikes on the previous step's membrane)."""
    if k.order == "spyx":
        trace = jnp.concatenate([prev[None], trace[:-1]], axis=0)
    return heaviside(trace - k.threshold, k.compare)


def _pad_time(a, steps: int):
    return a if a.shape[0] == steps else jnp.pad(a, [(0, steps - a.shape[0])] + [(0, 0)] * (a.ndim - 1))


def _input_product(events, other, acc=None):
    """`events @ other` (with `acc`: `acc + events^T @ other`) for layer 1, whose `events` are
    the mostly-zero input: float32 goes through `kernels.event_matmul` (on CPU a native kernel
    that only touches the rows of inputs that fired), other dtypes through the dense dot."""
    fast = events.dtype == jnp.float32 and other.dtype == jnp.float32
    if acc is None:
        return event_matmul(events, other) if fast else events @ other
    return event_matmul_t(events, other, acc) if fast and acc.dtype == jnp.float32 else acc + events.T @ other


def _net_run(k: _Consts, x, w1, w2, keep_trace: bool):
    """The whole network forward, layer 1 in chunks of time: per chunk one `[C*B, n_in] x
    [n_in, hidden]` matmul, the LIF scan over the chunk, and the chunk's layer-2 currents; then
    the layer-2 LIF over the whole sequence. Full-length arrays: the layer-1 trace (kept for the
    backward only) and the small layer-2 ones."""
    steps, batch = x.shape[0], x.shape[1]
    n, c = _chunks(steps)
    xc = _pad_time(x, n * c).reshape(n, c, batch, x.shape[2])

    hidden, n_out = w1.shape[0], w2.shape[0]
    w1t = w1.T

    def chunk(v1, x_c):
        i1 = _input_product(x_c.reshape(c * batch, x.shape[2]), w1t).reshape(c, batch, hidden)
        v1, out = _lif_run(k, v1, i1, keep_trace)
        s1, trace = out if keep_trace else (out, None)
        i2 = (s1.reshape(c * batch, hidden) @ w2.T).reshape(c, batch, n_out)
        return v1, ((i2, trace) if keep_trace else i2)

    _, out = jax.lax.scan(chunk, jnp.zeros((batch, hidden), x.dtype), xc)
    i2, trace1 = out if keep_trace else (out, None)
    i2 = i2.reshape(n * c, batch, n_out)[:steps]
    _, out2 = _lif_run(k, jnp.zeros((batch, n_out), x.dtype), i2, keep_trace)
    if not keep_trace:
        return out2, None
    s2, trace2 = out2
    return s2, (trace1, trace2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused_net(k: _Consts, x, w1, w2):
    return _net_run(k, x, w1, w2, keep_trace=False)[0]


def _fused_net_fwd(k: _Consts, x, w1, w2):
    s2, (trace1, trace2) = _net_run(k, x, w1, w2, keep_trace=True)
    return s2, (x, w1, w2, trace1, trace2)


def _fused_net_bwd(k: _Consts, res, ds2):
    """Layer 2's reverse scan, then layer 1 in reverse chunks: per chunk the layer-1 spikes from
    the trace (for dW2), the cotangent of those spikes `a2 @ W2`, the reverse LIF scan, and
    the chunk's `dW1 += a1^T x` (and dx, which XLA drops when nothing uses it)."""
    x, w1, w2, trace1, trace2 = res
    steps, batch, hidden = x.shape[0], x.shape[1], w1.shape[0]
    n, c = _chunks(steps)
    _, a2 = _lif_reverse(k, trace2, ds2)
    xc = _pad_time(x, n * c).reshape(n, c, batch, x.shape[2])
    a2c = _pad_time(a2, n * c).reshape(n, c, batch, w2.shape[0])
    tc = trace1.reshape(n, c, batch, hidden)
    prev = jnp.concatenate([jnp.zeros((1, batch, hidden), trace1.dtype), tc[:-1, -1]], axis=0)

    n_in, n_out = x.shape[2], w2.shape[0]

    def chunk(carry, xs):
        lif_carry, dw1t, dw2 = carry
        x_c, t_c, a2_c, prev_c = xs
        a2_rows = a2_c.reshape(c * batch, n_out)
        dw2 = dw2 + a2_rows.T @ _spikes_from_trace(k, t_c, prev_c).reshape(c * batch, hidden)
        lif_carry, a1 = _lif_reverse(k, t_c, (a2_rows @ w2).reshape(c, batch, hidden), lif_carry)
        a1_rows = a1.reshape(c * batch, hidden)
        dw1t = _input_product(x_c.reshape(c * batch, n_in), a1_rows, acc=dw1t)  # dW1^T += x_c^T a1: [n_in, hidden]
        return (lif_carry, dw1t, dw2), (a1_rows @ w1).reshape(c, batch, n_in)

    zero = jnp.zeros((batch, hidden), trace1.dtype)
    carry0 = ((zero, zero), jnp.zeros((n_in, hidden), w1.dtype), jnp.zeros_like(w2))
    (_, dw1t, dw2), dx = jax.lax.scan(chunk, carry0, (xc, tc, a2c, prev), reverse=True)
    return dx.reshape(n * c, batch, n_in)[:steps], dw1t.T, dw2


_fused_net.defvjp(_fused_net_fwd, _fused_net_bwd)


def lif_sequence(currents: Float[Array, "T B N"], config: SNNConfig = SNNConfig(),
                 impl: str = "fused") -> Float[Array, "T B N"]:
    """Spikes of a layer of `config.lif()` neurons driven by `currents` from a zero state.

    impl "fused" (or "chunked"): the scan with the hand-written VJP (module doc); "reference" /
    "hoisted": the LIF module's own scan (autodiff)."""
    _check_impl(impl)
    currents = jnp.asarray(currents)
    if currents.ndim < 2 or currents.shape[0] == 0 or not jnp.issubdtype(currents.dtype, jnp.floating):
        raise NeurojaxError(f"lif_sequence: currents must be a float array [T >= 1, B, ...], got "
                            f"{currents.dtype} {currents.shape}")
    if impl in ("fused", "chunked"):
        return _fused_lif(_consts(config), currents)
    lif = config.lif()
    spikes, _ = lif.apply({}, currents, lif.initial_state(currents.shape[1:], currents.dtype))
    return spikes


# ----------------------------------------------------------------------------- the network


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise NeurojaxError(f"unknown spiking MLP impl {impl!r}; known: {IMPLS}")


def _project(x, w):
    """`x @ w^T` over the whole sequence: [T, B, in] x [out, in] -> [T, B, out]."""
    return jnp.einsum("tbi,oi->tbo", x, w)


def forward(params: dict, x: Float[Array, "T B n_in"], config: SNNConfig = SNNConfig(),
            impl: str = "chunked") -> Float[Array, "T B n_out"]:
    """Output spikes `[T, B, n_out]` of the network (module doc) for time-major input spikes x."""
    _check_impl(impl)
    check_inputs(x, config)
    w1, w2 = params["fc1"]["weight"], params["fc2"]["weight"]
    if tuple(w1.shape) != (config.hidden, config.n_in) or tuple(w2.shape) != (config.n_out, config.hidden):
        raise NeurojaxError(f"weights {tuple(w1.shape)}, {tuple(w2.shape)} do not match the config: expected "
                            f"fc1 ({config.hidden}, {config.n_in}) and fc2 ({config.n_out}, {config.hidden})")
    if impl == "reference":
        lif = config.lif()
        batch = x.shape[1]
        state0 = (lif.initial_state((batch, config.hidden), x.dtype), lif.initial_state((batch, config.n_out), x.dtype))

        def body(states, x_t):
            st1, s1 = lif.apply({}, states[0], x_t @ w1.T, method="step")
            st2, s2 = lif.apply({}, states[1], s1 @ w2.T, method="step")
            return (st1, st2), s2

        _, out = jax.lax.scan(body, state0, x)
        return out
    if impl == "chunked":
        return _fused_net(_consts(config), x, w1, w2)
    s1 = lif_sequence(_project(x, w1), config, impl)
    return lif_sequence(_project(s1, w2), config, impl)


def loss(params: dict, x: Float[Array, "T B n_in"], labels: Int[Array, " B"], config: SNNConfig = SNNConfig(),
         impl: str = "chunked") -> Float[Array, ""]:
    """Softmax cross-entropy of the output spike counts (summed over time), mean over the batch."""
    check_inputs(x, config, labels)
    counts = forward(params, x, config, impl).sum(axis=0)
    return optax.softmax_cross_entropy_with_integer_labels(counts, labels).mean()


def make_train_step(config: SNNConfig = SNNConfig(), impl: str = "chunked", learning_rate: float = 1e-3,
                    donate: bool = True):
    """`(optimizer, step)`: Adam(learning_rate) and the jitted training step
    `step(params, opt_state, x, labels) -> (params, opt_state, loss)` (loss before the update).

    With `donate` the step reuses the memory of the params and optimizer state it is given (they
    are invalid afterwards: keep only the returned ones)."""
    _check_impl(impl)
    opt = optax.adam(learning_rate)

    @functools.partial(jax.jit, donate_argnums=(0, 1) if donate else ())
    def step(params, opt_state, x, labels):
        value, grads = jax.value_and_grad(loss)(params, x, labels, config, impl)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return opt, step


def loss_float64(params: dict, x, labels, config: SNNConfig = SNNConfig()) -> float:
    """The loss in float64 NumPy, step by step from the neurons module doc (the benchmark's
    check of every implementation and peer; weights and inputs are read as given)."""
    check_inputs(x, config, labels)
    x = np.asarray(x, np.float64)
    w1 = np.asarray(params["fc1"]["weight"], np.float64)
    w2 = np.asarray(params["fc2"]["weight"], np.float64)
    th, beta = float(config.threshold), float(config.beta)

    def step_fn(v):
        return (v > th) if config.compare == ">" else (v >= th)

    def layer(currents):
        v = np.zeros(currents.shape[1:])
        out = np.zeros_like(currents)
        for t in range(currents.shape[0]):
            if config.order == "neurojax":
                v = beta * v + currents[t]
                out[t] = step_fn(v)
                v = v * (1 - out[t]) if config.reset == "zero" else v - th * out[t]
                continue
            r = step_fn(v).astype(np.float64)
            v = beta * v * (1 - r) + currents[t] if config.reset == "zero" else beta * v + currents[t] - th * r
            out[t] = step_fn(v) if config.order == "snntorch" else r
        return out

    counts = layer(layer(x @ w1.T) @ w2.T).sum(axis=0)
    top = counts.max(axis=1, keepdims=True)
    lse = np.log(np.exp(counts - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(lse - counts[np.arange(counts.shape[0]), np.asarray(labels)]))


class _Weight(nn.Module):
    """A bias-free linear layer's weight `[out, in]` (PyTorch layout), U(-1, 1) * gain / sqrt(in)."""

    shape: tuple
    gain: float

    @nn.compact
    def __call__(self):
        def init(key, shape, dtype=jnp.float32):
            return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * (self.gain / np.sqrt(shape[1]))

        return self.param("weight", init, self.shape)


class SpikingMLP(nn.Module):
    """The network as a linen module: `apply(variables, x [T, B, n_in]) -> spikes [T, B, n_out]`.

    Parameters `fc1/weight [hidden, n_in]`, `fc2/weight [n_out, hidden]` (the workload's gains
    4 and 3 over sqrt(fan_in)); `impl` picks the implementation (module doc), all equal."""

    config: SNNConfig = SNNConfig()
    impl: str = "chunked"

    @nn.compact
    def __call__(self, x: Float[Array, "T B n_in"]) -> Float[Array, "T B n_out"]:
        cfg = self.config
        params = {"fc1": {"weight": _Weight((cfg.hidden, cfg.n_in), 4.0, name="fc1")()},
                  "fc2": {"weight": _Weight((cfg.n_out, cfg.hidden), 3.0, name="fc2")()}}
        return forward(params, x, cfg, self.impl)


__all__ = ["IMPLS", "ORDERS", "RESETS", "SNNConfig", "SpikingMLP", "check_inputs", "forward", "lif_sequence", "loss",
           "loss_float64", "make_train_step", "workload_inputs", "workload_params"]
