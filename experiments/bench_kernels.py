"""Benchmark: the kernels (packed ternary matmul, RMSNorm+int8, recurrence) and 370M decode.

    python -m experiments.bench_kernels                       # everything, ~5 min on 2 cores
    python -m experiments.bench_kernels --sections=matmul,recurrence --repeats=3
    python -m experiments.bench_kernels --sections=decode --decode_preset=tiny

Every figure is measured in this run (median of `--repeats` timed calls after a warm-up
call that compiles); ratios compare figures from the same run. Not a test: nothing
here asserts a time. Sections:

- `matmul`: int8 x packed ternary -> int32 (each implementation) vs `jnp.dot` in float32
  and bf16 on the same (dense) weights, at the 370M shapes, decode (1 row) and prefill
  (`--prefill_rows`). Decode shapes stream `--stream_mib` of distinct weight matrices per
  call, so the float32 weights come from memory, not cache, as they do in a real model.
- `decode`: tokens/s of the whole `--decode_preset` model (median jitted decode step over
  `--decode_tokens` steps), batch 1, greedy, with packed
  ternary weights (`inference_variables`) vs the same architecture with float32 weights
  (`full_precision=True`: a float32 matmul per projection, no quantizers: the float side
  does less work), and the bandwidth bound: bytes of weights read per token / the copy
  bandwidth of this machine measured here.
- `norm`: fused RMSNorm + per-token int8 quantization, each implementation, vs the
  unfused composition.
- `recurrence`: `h_t = a_t h_{t-1} + b_t` at `--recurrence_shape`, each implementation,
  forward and forward+backward.
"""
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from neurojax.kernels import linear_recurrence as lr
from neurojax.kernels import rmsnorm_quant as rq
from neurojax.kernels import ternary_matmul as tm

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.nn import (
    MatMulFreeLM,
    count_params,
    decode_step,
    inference_variables,
    init_params,
    initial_state,
    preset,
)
from neurojax.quant import absmax_int8

SECTIONS = ("matmul", "decode", "norm", "recurrence")
SHAPES_370M = "1024x1024,1024x5632,2816x1024"  # K (in) x N (out) of the 370M preset's projections

_MATMUL_SHAPES = flags.DEFINE_string("matmul_shapes", SHAPES_370M, "Comma-separated KxN shapes of the matmul section.")
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS), f"Which sections to run: {', '.join(SECTIONS)}.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per figure (median reported).")
_PREFILL_ROWS = flags.DEFINE_integer("prefill_rows", 2048, "Rows (tokens) of the prefill matmul.")
_STREAM_MIB = flags.DEFINE_integer("stream_mib", 256, "MiB of float32 weights streamed per decode-matmul call.")
_DECODE_PRESET = flags.DEFINE_string("decode_preset", "370M", "Model preset of the decode section.")
_DECODE_TOKENS = flags.DEFINE_integer("decode_tokens", 32, "Timed decode steps per model (median reported).")
_RECURRENCE_SHAPE = flags.DEFINE_string("recurrence_shape", "8x2048x1024", "B x T x d of the recurrence section.")


def median_ms(fn: Callable, *args) -> float:
    """Median wall time (ms) of `fn(*args)` over `--repeats` calls, after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def copy_bandwidth_gbs(mib: int = 512) -> float:
    """Copy bandwidth (GB/s, bytes read + written) of a jitted in-place `a + 1` on `mib` MiB."""
    step = jax.jit(lambda a: a + 1, donate_argnums=0)
    a = step(jnp.zeros((mib * 2**20 // 4,), jnp.float32))  # first call pays the page faults
    times = []
    for _ in range(max(3, _REPEATS.value)):
        start = time.perf_counter()
        a = jax.block_until_ready(step(a))
        times.append(time.perf_counter() - start)
    return 2 * a.nbytes / float(np.median(times)) / 1e9


def _chain(matmul: Callable) -> Callable:
    """Apply `matmul(x, w_i)` to each weight of a list in turn (a data dependency, like layers)."""
    def run(x, weights):
        outs = []
        for w in weights:
            y = matmul(x, w)
            outs.append(y)
            x = x + (y[:, :1] & 1).astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.integer) else x + y[:, :1]
        return outs
    return jax.jit(run)


def _parse_shapes(text: str, flag: str, rank: int) -> list[tuple[int, ...]]:
    shapes = []
    for part in text.split(","):
        try:
            shape = tuple(int(v) for v in part.strip().lower().split("x"))
        except ValueError:
            shape = ()
        if len(shape) != rank or min(shape) < 1:
            raise NeurojaxError(f"{flag} wants {'x'.join('ABC'[:rank])} sizes >= 1, got {part!r}")
        shapes.append(shape)
    return shapes


def bench_matmul() -> None:
    rng = np.random.default_rng(0)
    impls = [i for i in tm.IMPLEMENTATIONS if i != "pallas" or jax.default_backend() != "cpu"]
    _cli.say("\n== packed ternary matmul: int8 x 2-bit weights -> int32 (ms per matrix; ratio = dense f32 / this)")
    if "pallas" not in impls:
        _cli.say("   (pallas skipped: interpret mode on CPU measures the interpreter, not the kernel)")
    for k, n in _parse_shapes(_MATMUL_SHAPES.value, "--matmul_shapes", 2):
        codes = rng.integers(-1, 2, (n, k)).astype(np.int8)
        dense_bytes = 4 * k * n
        packed = tm.pack(codes, scale=1.0)
        _cli.say(f"-- K={k} N={n}: weight memory float32 {dense_bytes:,} B, bf16 {dense_bytes // 2:,} B, "
                 f"packed {tm.weight_bytes(packed):,} B incl. scale "
                 f"(float32 / packed = {dense_bytes / tm.weight_bytes(packed):.2f}x)")
        for rows in (1, _PREFILL_ROWS.value):
            copies = max(1, _STREAM_MIB.value * 2**20 // dense_bytes) if rows == 1 else 1
            w32 = [jnp.asarray(np.roll(codes, i, 1).T, jnp.float32) for i in range(copies)]
            results = {"dense f32": median_ms(_chain(lambda x, w: x @ w), jnp.ones((rows, k), jnp.float32), w32) / copies}
            w16 = [w.astype(jnp.bfloat16) for w in w32]
            del w32
            results["dense bf16"] = median_ms(_chain(lambda x, w: x @ w), jnp.ones((rows, k), jnp.bfloat16), w16) / copies
            del w16
            packs = [tm.pack(np.roll(codes, i, 1)) for i in range(copies)]
            x8 = jnp.asarray(rng.integers(-127, 128, (rows, k)), jnp.int8)
            for impl in impls:
                fn = _chain(lambda x, p, impl=impl: tm.ternary_matmul(x, p, impl=impl))
                results[f"packed {impl}"] = median_ms(fn, x8, packs) / copies
            base = results["dense f32"]
            _cli.say(f"   rows={rows:5d} ({copies} distinct matrices per call): " + "; ".join(
                f"{name} {ms:.3f} ms ({base / ms:.2f}x)" for name, ms in results.items()))


def _decode_ms_per_token(model, variables) -> float:
    """Median time of one jitted greedy decode step (batch 1), over `--decode_tokens` steps."""
    @jax.jit
    def step(variables, token, state):
        logits, state = decode_step(model, variables, token, state)
        return jnp.argmax(logits, -1).astype(jnp.int32), state

    token, state = jnp.zeros((1,), jnp.int32), initial_state(model.config, 1)
    token, state = jax.block_until_ready(step(variables, token, state))  # compile
    times = []
    for _ in range(_DECODE_TOKENS.value):
        start = time.perf_counter()
        token, state = jax.block_until_ready(step(variables, token, state))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _bytes_per_token(variables, embedding_rows: int) -> int:
    """Weight bytes one decode step reads: every array once, but only one embedding row."""
    total = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
        name = jax.tree_util.keystr(path)
        if "embedding" in name and leaf.ndim == 2 and leaf.shape[0] == embedding_rows:
            total += leaf.shape[1] * leaf.dtype.itemsize
        else:
            total += leaf.size * leaf.dtype.itemsize
    return total


def bench_decode() -> None:
    name = _DECODE_PRESET.value
    cfg = preset(name)
    _cli.say(f"\n== decode [{name}, {count_params(cfg) / 1e6:.1f}M params, batch 1, greedy, one jitted step per token]")
    gbs = copy_bandwidth_gbs()
    _cli.say(f"   copy bandwidth of this machine (jitted in-place a+1 on 512 MiB, read+write): {gbs:.1f} GB/s")
    model = MatMulFreeLM(cfg)
    packed_vars = inference_variables(model, init_params(model, jax.random.PRNGKey(0), seq_len=1))
    packed_ms = _decode_ms_per_token(model, packed_vars)
    packed_bytes = _bytes_per_token(packed_vars, cfg.vocab_size)
    del packed_vars
    fp_model = MatMulFreeLM(preset(name, full_precision=True))
    fp_vars = {"params": init_params(fp_model, jax.random.PRNGKey(0), seq_len=1)}
    fp_ms = _decode_ms_per_token(fp_model, fp_vars)
    fp_bytes = _bytes_per_token(fp_vars, cfg.vocab_size)
    del fp_vars
    for label, ms, nbytes in (("packed ternary", packed_ms, packed_bytes), ("float32 weights", fp_ms, fp_bytes)):
        bound_ms = nbytes / (gbs * 1e9) * 1e3
        _cli.say(f"   {label:16s}: {1e3 / ms:7.1f} tokens/s ({ms:.2f} ms/token); reads {nbytes / 2**20:.0f} MiB/token; "
                 f"bandwidth bound {1e3 / bound_ms:.1f} tokens/s; time / bound = {ms / bound_ms:.2f}x")
    _cli.say(f"   packed / float32 tokens/s: {fp_ms / packed_ms:.2f}x  (target >= 4x; packed within 3x of its bound)")


def bench_norm() -> None:
    _cli.say("\n== fused RMSNorm + per-token int8 quantization (ms)")
    unfused = jax.jit(lambda x, w: absmax_int8(rq.rms_norm(x, w, 1e-6)))  # float codes, as in training
    for rows in (1, _PREFILL_ROWS.value):
        x = jax.random.normal(jax.random.PRNGKey(0), (rows, 1024))
        w = jnp.ones((1024,))
        impls = [i for i in rq.IMPLEMENTATIONS if i != "pallas" or jax.default_backend() != "cpu"]
        figures = {i: median_ms(jax.jit(lambda x, w, i=i: rq.rmsnorm_quant(x, w, 1e-6, impl=i)), x, w) for i in impls}
        figures["unfused absmax_int8(rms_norm)"] = median_ms(unfused, x, w)
        _cli.say(f"   rows={rows:5d} d=1024: " + "; ".join(f"{k} {v:.3f}" for k, v in figures.items()))


def bench_recurrence() -> None:
    (b, t, d), = _parse_shapes(_RECURRENCE_SHAPE.value, "--recurrence_shape", 3)
    _cli.say(f"\n== linear recurrence h_t = a_t h_(t-1) + b_t, B={b} T={t} d={d} (ms; ratio = sequential / this)")
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    a = jax.nn.sigmoid(jax.random.normal(keys[0], (b, t, d)))
    x = jax.random.normal(keys[1], (b, t, d))
    h0 = jax.random.normal(keys[2], (b, d))
    impls = [i for i in lr.IMPLEMENTATIONS if i != "pallas" or jax.default_backend() != "cpu"]
    fwd, both = {}, {}
    for impl in impls:
        f = jax.jit(lambda a, x, h, impl=impl: lr.linear_recurrence(a, x, h, impl=impl)[0])
        g = jax.jit(jax.grad(lambda a, x, h, impl=impl: jnp.sum(lr.linear_recurrence(a, x, h, impl=impl)[0]),
                             argnums=(0, 1, 2)))
        fwd[impl], both[impl] = median_ms(f, a, x, h0), median_ms(g, a, x, h0)
    for label, fig in (("forward", fwd), ("forward+backward", both)):
        base = fig["reference"]
        _cli.say(f"   {label:17s}: " + "; ".join(f"{k} {v:.3f} ({base / v:.2f}x)" for k, v in fig.items()))


def main(argv):
    unknown = set(_SECTIONS.value) - set(SECTIONS)
    if unknown:
        raise NeurojaxError(f"unknown --sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if _REPEATS.value < 1 or _PREFILL_ROWS.value < 1 or _DECODE_TOKENS.value < 4 or _STREAM_MIB.value < 1:
        raise NeurojaxError("--repeats, --prefill_rows, --stream_mib must be >= 1 and --decode_tokens >= 4")
    _parse_shapes(_MATMUL_SHAPES.value, "--matmul_shapes", 2)
    _parse_shapes(_RECURRENCE_SHAPE.value, "--recurrence_shape", 3)
    _cli.say(f"backend: {jax.default_backend()}, devices: {jax.devices()}")
    for section in SECTIONS:
        if section in _SECTIONS.value:
            globals()[f"bench_{section}"]()


if __name__ == "__main__":
    _cli.run(main)
