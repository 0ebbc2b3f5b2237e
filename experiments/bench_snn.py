"""Benchmark: spiking-network training speed, neurojax vs Spyx and snnTorch, on an SHD-like workload.

    python -m experiments.bench_snn                                   # neurojax only (peers "not installed")
    /tmp/snnbench/bin/python -m experiments.bench_snn                 # with Spyx and snnTorch
    python -m experiments.bench_snn --points=100x256 --steps=5 --impls=fused --orders=snntorch

The workload (`neurojax.spiking.snn`, issue 15): input `default_rng(0).random((T, B, 700)) < 0.05`
as float32 spikes, time-major; labels `default_rng(1).integers(0, 20, B)`; weights from
`default_rng(2)` (W1 U(-1, 1) * 4 / sqrt(700) [H, 700], W2 U(-1, 1) * 3 / sqrt(H) [20, H], no
biases); Linear -> LIF -> Linear -> LIF, beta 0.9, threshold 1, reset by subtraction, zero
initial state, spike `v - threshold > 0` with the surrogate `1 / (1 + 25 |v - threshold|)^2`;
loss: softmax cross-entropy of the output spike counts; Adam, lr 1e-3. `--points` are the
`TxH` sizes (default: T in {50, 100, 200} at H = 256 and H = 1024 at T = 100), B = `--batch`.

Contenders, all in this process on the same arrays:
  - neurojax, each `--impls` implementation (`snn.IMPLS`: reference, hoisted, fused, chunked)
    in each `--orders` update order: "snntorch" (reset detached, as snnTorch) and "spyx" (the
    reset not detached, as Spyx), i.e. the same computation as the peer of that order;
  - Spyx (`spyx.nn.Sequential` of `flax.nnx.Linear` (no bias) and `spyx.nn.LIF(beta=0.9,
    activation=spyx.axn.superspike(k=25))`, run by `spyx.nn.run`, jitted step; only the two
    kernels are trained: Spyx makes beta an `nnx.Param`, the workload keeps it fixed);
  - snnTorch eager (`torch.nn.Linear(bias=False)` and `snntorch.Leaky(beta=0.9,
    spike_grad=surrogate.fast_sigmoid(slope=25))`, a Python loop over time, `torch.optim.Adam`).
Spyx and snnTorch are never dependencies of the project: they run when importable. Install them
in a scratch environment that sees this one's packages (so JAX is the same version):

    python -m venv --system-site-packages /tmp/snnbench
    /tmp/snnbench/bin/pip install spyx==1.0.0 snntorch==1.0.0 torch   # torch: the CPU wheel is enough
    /tmp/snnbench/bin/python -m experiments.bench_snn

Figures per contender and point: the step-0 loss (before any update) and its distance to the
float64 NumPy loss of the same order (`snn.loss_float64`); the relative distance of its step-0
gradients (W1, W2) to neurojax's "reference" implementation of the same order (so a peer is
checked to do the same work); compile time (JAX: `jit(step).lower(...).compile()`, wall
time; snnTorch eager: none); the median over `--steps` timed calls, after `--warmup` calls, of
the forward (loss only) and of the training step (forward + backward + Adam; the parameters
are updated each step); peak memory of the step: JAX, the compiled step's arguments + outputs +
temporaries from XLA's buffer assignment (`memory_analysis()`); snnTorch, parameters, their
gradients and Adam moments, the input, and every tensor autograd saves for the backward
(measured with saved-tensor hooks; torch's own allocator state is not visible on CPU).
Timed calls go round-robin over the contenders (one call of each in turn), so a change of load
on a shared machine hits every contender alike; ratios compare figures of this one run. Not a
test: nothing here asserts a time; the last lines say which targets of the issue the run met.
Writes a PNG of step time against T (at the first point's H) and against H (at its T).
"""
import dataclasses
import importlib.metadata
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.spiking import snn

DEFAULT_POINTS = "100x256,50x256,200x256,100x1024"
PEERS = ("spyx", "snntorch")
PEER_ORDER = {"spyx": "spyx", "snntorch": "snntorch"}

_POINTS = flags.DEFINE_string("points", DEFAULT_POINTS, "Comma-separated TxH sizes (time steps x hidden units).")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size B.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed calls per figure (median reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls of each contender before timing.")
_IMPLS = flags.DEFINE_list("impls", list(snn.IMPLS), f"neurojax implementations: {', '.join(snn.IMPLS)}.")
_ORDERS = flags.DEFINE_list("orders", ["snntorch", "spyx"], "LIF update orders (snntorch, spyx; neurojax: no peer).")
_PEERS = flags.DEFINE_list("peers", list(PEERS), "Peers to run when importable: spyx, snntorch (or none).")
_BETA = flags.DEFINE_float("beta", 0.9, "Membrane decay per step.")
_THRESHOLD = flags.DEFINE_float("threshold", 1.0, "Firing threshold (> 0).")
_PNG = flags.DEFINE_string("png", "bench_snn.png", "Where to write the plot of step time against T and H.")
_FAST = flags.DEFINE_string("fast", "chunked", "The neurojax implementation the targets are checked with.")


@dataclasses.dataclass
class Contender:
    name: str
    order: str
    forward: Callable[[], float]  # one forward + loss, blocking; returns the loss
    step: Callable[[], float]  # one training step, blocking; returns the loss before the update
    grads: Callable[[], tuple[np.ndarray, np.ndarray]]  # step-0 gradients of W1, W2 ([out, in])
    compile_s: float | None = None
    peak_bytes: int | None = None
    loss0: float = math.nan
    grad_err: float = math.nan
    fwd_times: list = dataclasses.field(default_factory=list)
    step_times: list = dataclasses.field(default_factory=list)

    @property
    def fwd_ms(self) -> float:
        return 1e3 * float(np.median(self.fwd_times))

    @property
    def step_ms(self) -> float:
        return 1e3 * float(np.median(self.step_times))


def parse_points(text: str) -> list[tuple[int, int]]:
    points = []
    for part in text.split(","):
        try:
            t, h = (int(v) for v in part.strip().lower().split("x"))
        except ValueError:
            t = h = 0
        if t < 1 or h < 1:
            raise NeurojaxError(f"--points wants TxH sizes with T >= 1 and H >= 1, got {part.strip()!r}")
        points.append((t, h))
    return points


def _jax_peak_bytes(compiled) -> int | None:
    m = compiled.memory_analysis()
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _timed_compile(fn, *args):
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def _to_numpy_params(params: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(params["fc1"]["weight"]), np.asarray(params["fc2"]["weight"])


# ----------------------------------------------------------------------------- contenders


def neurojax_contender(impl: str, config: snn.SNNConfig, params: dict, x: np.ndarray, labels: np.ndarray) -> Contender:
    opt, step = snn.make_train_step(config, impl)  # donates params and optimizer state: give it copies
    xj, yj = jnp.asarray(x), jnp.asarray(labels)
    state = {"params": jax.tree.map(jnp.copy, params)}
    state["opt"] = opt.init(state["params"])
    compiled, compile_s = _timed_compile(step, params, state["opt"], xj, yj)
    fwd = jax.jit(lambda p, x_, y_: snn.loss(p, x_, y_, config, impl)).lower(params, xj, yj).compile()
    grad = jax.jit(jax.grad(lambda p, x_, y_: snn.loss(p, x_, y_, config, impl)))

    def run_step():
        state["params"], state["opt"], value = compiled(state["params"], state["opt"], xj, yj)
        return float(jax.block_until_ready(value))

    def grads():
        return _to_numpy_params(grad(params, xj, yj))

    return Contender(f"neurojax {impl}", config.order, lambda: float(jax.block_until_ready(fwd(state["params"], xj, yj))),
                     run_step, grads, compile_s, _jax_peak_bytes(compiled))


def spyx_contender(config: snn.SNNConfig, params: dict, x: np.ndarray, labels: np.ndarray) -> Contender:
    import optax
    import spyx
    from flax import nnx

    hidden, n_out = config.hidden, config.n_out
    act = spyx.axn.superspike(k=config.slope)
    rngs = nnx.Rngs(0)
    model = spyx.nn.Sequential(
        nnx.Linear(config.n_in, hidden, use_bias=False, rngs=rngs),
        spyx.nn.LIF((hidden,), beta=config.beta, threshold=config.threshold, activation=act, rngs=rngs),
        nnx.Linear(hidden, n_out, use_bias=False, rngs=rngs),
        spyx.nn.LIF((n_out,), beta=config.beta, threshold=config.threshold, activation=act, rngs=rngs))
    w1, w2 = _to_numpy_params(params)
    model.layers[0].kernel[...] = jnp.asarray(w1.T)  # nnx kernels are [in, out]
    model.layers[2].kernel[...] = jnp.asarray(w2.T)
    graphdef, kernels, rest = nnx.split(model, nnx.All(nnx.Param, nnx.PathContains("kernel")), ...)

    def loss_fn(kernels_, rest_, x_, y_):
        out, _ = spyx.nn.run(nnx.merge(graphdef, kernels_, rest_), x_)
        return optax.softmax_cross_entropy_with_integer_labels(out.sum(axis=0), y_).mean()

    opt = optax.adam(1e-3)

    @jax.jit
    def step(kernels_, opt_state, rest_, x_, y_):
        value, g = jax.value_and_grad(loss_fn)(kernels_, rest_, x_, y_)
        updates, opt_state = opt.update(g, opt_state, kernels_)
        return optax.apply_updates(kernels_, updates), opt_state, value

    xj, yj = jnp.asarray(x), jnp.asarray(labels)
    state = {"k": kernels, "opt": opt.init(kernels)}
    compiled, compile_s = _timed_compile(step, kernels, state["opt"], rest, xj, yj)
    fwd = jax.jit(loss_fn).lower(kernels, rest, xj, yj).compile()

    def run_step():
        state["k"], state["opt"], value = compiled(state["k"], state["opt"], rest, xj, yj)
        return float(jax.block_until_ready(value))

    def grads():
        g = jax.grad(loss_fn)(kernels, rest, xj, yj)
        return np.asarray(g["layers"][0]["kernel"][...]).T, np.asarray(g["layers"][2]["kernel"][...]).T

    name = f"Spyx {importlib.metadata.version('spyx')}"
    return Contender(name, "spyx", lambda: float(jax.block_until_ready(fwd(state["k"], rest, xj, yj))),
                     run_step, grads, compile_s, _jax_peak_bytes(compiled))


def snntorch_contender(config: snn.SNNConfig, params: dict, x: np.ndarray, labels: np.ndarray) -> Contender:
    import snntorch
    import torch
    from snntorch import surrogate

    hidden, n_out = config.hidden, config.n_out
    fc1 = torch.nn.Linear(config.n_in, hidden, bias=False)
    fc2 = torch.nn.Linear(hidden, n_out, bias=False)
    w1, w2 = _to_numpy_params(params)
    with torch.no_grad():
        fc1.weight.copy_(torch.from_numpy(np.array(w1)))
        fc2.weight.copy_(torch.from_numpy(np.array(w2)))
    grad_fn = surrogate.fast_sigmoid(slope=config.slope)
    lif1 = snntorch.Leaky(beta=config.beta, threshold=config.threshold, spike_grad=grad_fn, reset_mechanism="subtract")
    lif2 = snntorch.Leaky(beta=config.beta, threshold=config.threshold, spike_grad=grad_fn, reset_mechanism="subtract")
    xt, yt = torch.from_numpy(np.array(x)), torch.from_numpy(np.array(labels))
    weights = [fc1.weight, fc2.weight]
    opt = torch.optim.Adam(weights, lr=1e-3)
    steps, batch = x.shape[0], x.shape[1]

    def loss_fn():
        mem1, mem2 = torch.zeros(batch, hidden), torch.zeros(batch, n_out)
        counts = torch.zeros(batch, n_out)
        for t in range(steps):
            spk1, mem1 = lif1(fc1(xt[t]), mem1)
            spk2, mem2 = lif2(fc2(spk1), mem2)
            counts = counts + spk2
        return torch.nn.functional.cross_entropy(counts, yt)

    def forward():
        with torch.no_grad():
            return float(loss_fn())

    def run_step():
        opt.zero_grad(set_to_none=True)
        value = loss_fn()
        value.backward()
        opt.step()
        return float(value.detach())

    def grads():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        out = tuple(w.grad.detach().numpy().copy() for w in weights)
        opt.zero_grad(set_to_none=True)
        return out

    def peak_bytes() -> int:
        seen = {}

        def pack(t):
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            value = loss_fn()
        del value
        param_bytes = sum(w.numel() * w.element_size() for w in weights)
        return int(sum(seen.values()) + 4 * param_bytes + xt.numel() * xt.element_size())

    name = f"snnTorch {importlib.metadata.version('snntorch')} eager"
    return Contender(name, "snntorch", forward, run_step, grads, None, peak_bytes())


PEER_BUILDERS = {"spyx": spyx_contender, "snntorch": snntorch_contender}


def peer_available(name: str) -> str | None:
    """None when the peer's packages import, else why not."""
    modules = {"spyx": ("spyx", "flax.nnx"), "snntorch": ("snntorch", "torch")}[name]
    for m in modules:
        try:
            __import__(m)
        except Exception as e:  # an absent or broken install: report it, run the others
            return f"not installed ({m}: {type(e).__name__})"
    return None


# ----------------------------------------------------------------------------- the run


def run_point(steps_t: int, hidden: int, batch: int, impls: list[str], orders: list[str], peers: list[str],
              beta: float, threshold: float) -> tuple[list[Contender], dict]:
    x, labels = snn.workload_inputs(steps_t, batch)
    contenders, notes, ref64 = [], {}, {}
    configs = {}
    for order in orders:
        cfg = snn.SNNConfig(hidden=hidden, beta=beta, threshold=threshold, order=order,
                            detach_reset=order != "spyx")
        configs[order] = cfg
        params = snn.workload_params(cfg)
        ref64[order] = snn.loss_float64(params, x, labels, cfg)
        for impl in impls:
            contenders.append(neurojax_contender(impl, cfg, params, x, labels))
    for peer in peers:
        order = PEER_ORDER[peer]
        why = peer_available(peer)
        if why is None and order not in configs:
            why = f"skipped (its order {order!r} is not in --orders)"
        if why is not None:
            notes[peer] = why
            continue
        cfg = configs[order]
        contenders.append(PEER_BUILDERS[peer](cfg, snn.workload_params(cfg), x, labels))
    grads = [c.grads() for c in contenders]
    for c in contenders:
        c.loss0 = c.forward()
    for c, g in zip(contenders, grads):
        same = [i for i, o in enumerate(contenders) if o.order == c.order and o.name.startswith("neurojax")]
        ref = next((i for i in same if contenders[i].name == "neurojax reference"), same[0] if same else None)
        if ref is not None:
            c.grad_err = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
                             for a, b in zip(g, grads[ref]))
    for c in contenders:
        for _ in range(_WARMUP.value):
            c.forward()
            c.step()
    for kind in ("fwd", "step"):
        for _ in range(_STEPS.value):
            for c in contenders:
                fn = c.forward if kind == "fwd" else c.step
                start = time.perf_counter()
                fn()
                (c.fwd_times if kind == "fwd" else c.step_times).append(time.perf_counter() - start)
    return contenders, {"notes": notes, "ref64": ref64}


def _fmt(v, spec: str, missing: str = "-") -> str:
    return missing if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def print_point(steps_t: int, hidden: int, batch: int, contenders: list[Contender], info: dict) -> None:
    refs = ", ".join(f"{o} order {v:.6f}" for o, v in info["ref64"].items())
    _cli.say(f"\n== T={steps_t} H={hidden} B={batch}: float64 step-0 loss {refs}")
    _cli.say(f"   {'contender':<26}{'order':<10}{'step ms':>9}{'fwd ms':>9}{'compile s':>11}{'peak MiB':>10}"
             f"{'step-0 loss':>13}{'|d loss|':>10}{'grad err':>10}")
    for c in contenders:
        d = abs(c.loss0 - info["ref64"][c.order])
        _cli.say(f"   {c.name:<26}{c.order:<10}{c.step_ms:9.2f}{c.fwd_ms:9.2f}{_fmt(c.compile_s, '11.2f', '  (eager)'):>11}"
                 f"{_fmt(None if c.peak_bytes is None else c.peak_bytes / 2**20, '10.1f'):>10}"
                 f"{c.loss0:13.6f}{d:10.1e}{c.grad_err:10.1e}")
    for peer, why in info["notes"].items():
        _cli.say(f"   {peer:<26}{why}")


def _find(contenders, name_prefix: str, order: str) -> Contender | None:
    for c in contenders:
        if c.name.startswith(name_prefix) and c.order == order:
            return c
    return None


def targets(results: list[tuple], fast: str) -> list[dict]:
    """Per point: neurojax `fast` (spyx order) against Spyx; compile and loss of every neurojax row."""
    rows = []
    for steps_t, hidden, contenders, _ in results:
        ours, peer = _find(contenders, f"neurojax {fast}", "spyx"), _find(contenders, "Spyx", "spyx")
        row = {"T": steps_t, "H": hidden}
        if ours is not None and peer is not None:
            row.update(step_ratio=peer.step_ms / ours.step_ms, fwd_ratio=peer.fwd_ms / ours.fwd_ms,
                       mem_ratio=(ours.peak_bytes / peer.peak_bytes) if ours.peak_bytes and peer.peak_bytes else None)
        nj = [c for c in contenders if c.name.startswith("neurojax")]
        row["max_compile_s"] = max((c.compile_s for c in nj), default=None)
        row["fast_compile_s"] = max((c.compile_s for c in nj if c.name == f"neurojax {fast}"), default=None)
        rows.append(row)
    return rows


def plot(results, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base_t, base_h = results[0][0], results[0][1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (label, key, fixed) in zip(axes, (("T (time steps)", 0, ("H", base_h)), ("H (hidden units)", 1, ("T", base_t)))):
        series: dict[str, list] = {}
        for steps_t, hidden, contenders, _ in results:
            if (hidden if fixed[0] == "H" else steps_t) != fixed[1]:
                continue
            for c in contenders:
                series.setdefault(f"{c.name} ({c.order})", []).append(((steps_t, hidden)[key], c.step_ms))
        for name, pts in sorted(series.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xlabel(label)
        ax.set_yscale("log")
        ax.set_ylabel("training step (ms, median, log scale)")
        ax.set_title(f"step time vs {label.split()[0]} at {fixed[0]} = {fixed[1]}")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"SNN training step (forward + backward + Adam), B = {_BATCH.value}, {jax.default_backend()}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    points = parse_points(_POINTS.value)
    if _BATCH.value < 1 or _STEPS.value < 1 or _WARMUP.value < 0:
        raise NeurojaxError("--batch and --steps must be >= 1 and --warmup >= 0")
    impls = [i.strip() for i in _IMPLS.value if i.strip()]
    for impl in impls:
        if impl not in snn.IMPLS:
            raise NeurojaxError(f"--impls: unknown implementation {impl!r}; known: {', '.join(snn.IMPLS)}")
    orders = [o.strip() for o in _ORDERS.value if o.strip()]
    for order in orders:
        if order not in snn.ORDERS:
            raise NeurojaxError(f"--orders: unknown order {order!r}; known: {', '.join(snn.ORDERS)}")
    peers = [p.strip() for p in _PEERS.value if p.strip() and p.strip() != "none"]
    for peer in peers:
        if peer not in PEERS:
            raise NeurojaxError(f"--peers: unknown peer {peer!r}; known: {', '.join(PEERS)} (or none)")
    if _FAST.value not in snn.IMPLS:
        raise NeurojaxError(f"--fast: unknown implementation {_FAST.value!r}; known: {', '.join(snn.IMPLS)}")
    if not impls or not orders:
        raise NeurojaxError("--impls and --orders must name at least one implementation and one order")
    snn.SNNConfig(beta=_BETA.value, threshold=_THRESHOLD.value)  # one clear error for a bad constant
    _cli.say(f"SNN training benchmark on {jax.default_backend()} ({jax.devices()[0].device_kind}), "
             f"jax {jax.__version__}; medians of {_STEPS.value} calls after {_WARMUP.value} warm-up calls, "
             f"timed round-robin over the contenders")
    results = []
    for steps_t, hidden in points:
        contenders, info = run_point(steps_t, hidden, _BATCH.value, impls, orders, peers, _BETA.value, _THRESHOLD.value)
        print_point(steps_t, hidden, _BATCH.value, contenders, info)
        results.append((steps_t, hidden, contenders, info))
    _cli.say("\n   peak MiB: JAX = XLA buffer assignment of the compiled step (arguments + outputs + temporaries);"
             " snnTorch = parameters, gradients, Adam moments, input and the tensors autograd saves."
             "\n   grad err: max |dW - dW_ref| / max |dW_ref| against neurojax reference of the same order (or the"
             " first contender of that order); |d loss|: against the float64 NumPy loss.")
    rows = targets(results, _FAST.value)
    _cli.say(f"\n== targets (neurojax {_FAST.value}, spyx order, against Spyx in this run)")
    for r in rows:
        head = f"   T={r['T']:<4} H={r['H']:<5}"
        if "step_ratio" not in r:
            _cli.say(f"{head} Spyx or neurojax {_FAST.value} (spyx order) not in this run")
            continue
        mem = r["mem_ratio"]
        _cli.say(f"{head} step {r['step_ratio']:.2f}x faster (target >= 1.5: {'met' if r['step_ratio'] >= 1.5 else 'NOT met'}),"
                 f" forward {r['fwd_ratio']:.2f}x (>= 1: {'met' if r['fwd_ratio'] >= 1 else 'NOT met'}),"
                 f" peak memory {_fmt(mem, '.2f')}x of Spyx's (<= 1: {'met' if mem is not None and mem <= 1 else 'NOT met'})")
    compile_max = max((r["fast_compile_s"] or 0.0) for r in rows)
    _cli.say(f"   compile of neurojax {_FAST.value}: at most {compile_max:.2f} s (target < 2 s: "
             f"{'met' if compile_max < 2 else 'NOT met'})")
    for label, sel in (("at the first point", results[:1]), ("at every point", results)):
        worst = max(abs(c.loss0 - info["ref64"][c.order]) for _, _, cs, info in sel for c in cs
                    if c.name.startswith("neurojax"))
        _cli.say(f"   step-0 loss of every neurojax row {label}: within {worst:.1e} of float64 (target 1e-5: "
                 f"{'met' if worst <= 1e-5 else 'NOT met'})")
    plot(results, _PNG.value)
    _cli.say(f"plot: {_PNG.value}")
    import json

    summary = {"points": [{"T": t, "H": h, "rows": [{"name": c.name, "order": c.order, "step_ms": c.step_ms,
                                                      "fwd_ms": c.fwd_ms, "compile_s": c.compile_s,
                                                      "peak_bytes": c.peak_bytes, "loss0": c.loss0,
                                                      "grad_err": c.grad_err} for c in cs]}
                          for t, h, cs, _ in results], "targets": rows, "png": _PNG.value}
    _cli.say("json " + json.dumps(summary))


if __name__ == "__main__":
    _cli.run(main)
