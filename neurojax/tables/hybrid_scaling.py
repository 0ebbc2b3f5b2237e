"""Table: the SpikingBrain-style hybrid (GLA + sliding-window attention) vs full attention, tiny scale.

The preset is `hybrid_tiny` (`ctx.preset` "tiny", the default), `hybrid_micro` ("micro"), or
`ctx.preset` itself when it names a hybrid preset.

(i) Quality: the hybrid and its full-attention twin (the same `HybridConfig` with
    `layer_pattern=("swa",)` and `window` = the training sequence length, i.e. plain causal
    softmax attention in every layer) are trained from scratch by the same `train` function with
    the same data, schedule and seed (runs reused when complete), and scored in bits per byte.
(ii) Scaling: time to first token (jitted prefill of a batch-1 prompt, median of `REPEATS` runs,
    compilation excluded) and decoding-state memory vs prompt length (`LENGTH_MULTIPLES` windows:
    256 ... 8192 tokens for `hybrid_tiny`), with random weights of the same config. Prompts are prefilled in chunks of `PREFILL_CHUNK` tokens (a `lax.scan` over
    chunks carrying the model state), because the sliding-window sequence form is quadratic in
    the chunk length. The full-attention model runs the same code with a KV buffer of the whole
    prompt (window = prompt length).
"""
import os
import statistics
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from neurojax.nn.hybrid import (
    HybridLM,
    hybrid_abstract_params,
    hybrid_count_params,
    hybrid_initial_state,
    hybrid_state_bytes,
)
from neurojax.nn.hybrid_config import HybridConfig
from neurojax.tables.registry import Table, TableContext, register_table
from neurojax.train import run_config, train
from neurojax.train.loop import METRICS_FILE
from neurojax.train.metrics import plot_losses, read_metrics
from neurojax.train.model_factory import is_hybrid_preset, model_config

DEFAULT_PRESET = "hybrid_tiny"  # used unless ctx.preset names a hybrid preset or a scale in SCALE_PRESETS
SCALE_PRESETS = {"tiny": "hybrid_tiny", "micro": "hybrid_micro"}  # MatMul-free preset -> hybrid of that scale
DEFAULT_STEPS = 40  # the short training budget (ctx.num_steps overrides it)
# Training shapes of the table's runs (the preset's run_config defaults otherwise): small enough
# that both runs train in about a minute on 2 CPU cores; seq_len > window so the SWA window matters.
TRAIN = {"batch_size": 8, "seq_len": 128, "eval_batches": 8, "log_every": 10}
LENGTH_MULTIPLES = (4, 8, 16, 32, 64, 128)  # prompt lengths in windows: 256 ... 8192 tokens for hybrid_tiny
LENGTHS = None  # explicit prompt lengths instead (tests)
PREFILL_CHUNK = 256  # prompt tokens per prefill chunk
REPEATS = 3  # timed prefills per length (median reported)
VARIANTS = (("hybrid (GLA + SWA)", "hybrid"), ("full attention", "full_attention"))


def table_preset(ctx: TableContext) -> str:
    """ctx.preset if it is a hybrid preset; the hybrid of the same scale for "tiny" / "micro"."""
    if is_hybrid_preset(ctx.preset):
        return ctx.preset
    return SCALE_PRESETS.get(str(ctx.preset).lower(), DEFAULT_PRESET)


def full_attention_twin(config: HybridConfig, window: int) -> HybridConfig:
    """Every layer softmax attention over `window` >= sequence length keys: plain causal attention."""
    return config.replace(layer_pattern=("swa",), window=int(window))


def variant_config(ctx: TableContext, variant: str):
    """The run config of one variant ("hybrid" or "full_attention")."""
    cfg = run_config(table_preset(ctx))
    cfg.train.update(TRAIN)
    steps = int(ctx.num_steps or DEFAULT_STEPS)
    cfg.train.update(num_steps=steps, warmup_steps=min(max(1, steps // 10), steps - 1), eval_every=0,
                     checkpoint_every=steps, log_every=min(cfg.train.log_every, steps))
    if variant == "full_attention":
        cfg.model.layer_pattern = ("swa",)
        cfg.model.window = cfg.train.seq_len
    if ctx.data:
        cfg.data.source = ctx.data
    return cfg


def variant_workdir(ctx: TableContext, variant: str) -> str:
    return os.path.join(ctx.workdir, f"{table_preset(ctx)}_{variant}")


def make_prefill(model, length: int, chunk: int, initial_state: Optional[Callable] = None):
    """Jitted `prefill(params, tokens [B, length]) -> (last-position logits [B, V], state)`, chunk by chunk.

    `model` is any neurojax LM whose `apply(variables, tokens, state)` continues from a state;
    `initial_state(batch)` makes the empty one (default: the hybrid's)."""
    full, rest = divmod(length, chunk)
    initial_state = initial_state or (lambda b: hybrid_initial_state(model.config, b))

    def prefill(params, tokens):
        b = tokens.shape[0]
        state = initial_state(b)
        logits = None
        if full:
            chunks = tokens[:, :full * chunk].reshape(b, full, chunk).transpose(1, 0, 2)

            def body(s, x):
                out, s = model.apply({"params": params}, x, s)
                return s, out[:, -1]

            state, lasts = jax.lax.scan(body, state, chunks)
            logits = lasts[-1]
        if rest:
            out, state = model.apply({"params": params}, tokens[:, full * chunk:], state)
            logits = out[:, -1]
        return logits, state

    return jax.jit(prefill)


def measure_prefill(model, params, length: int, chunk: int, repeats: int,
                    initial_state: Optional[Callable] = None) -> tuple[float, int]:
    """(median seconds of a batch-1 prefill of `length` tokens, bytes of the decoding state it returns).

    Compiled ahead of time (not timed); the state's bytes are those of the arrays the prefill produced."""
    tokens = jax.random.randint(jax.random.PRNGKey(length), (1, length), 0, model.config.vocab_size, jnp.int32)
    compiled = make_prefill(model, length, min(chunk, length), initial_state).lower(params, tokens).compile()
    times, state = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        _, state = jax.block_until_ready(compiled(params, tokens))
        times.append(time.perf_counter() - start)
    return statistics.median(times), int(sum(x.nbytes for x in jax.tree_util.tree_leaves(state)))


def time_prefill(config: HybridConfig, params, length: int, chunk: int, repeats: int) -> float:
    """Median seconds of a batch-1 prefill of `length` tokens of the hybrid `config` (compiled ahead of time)."""
    return measure_prefill(HybridLM(config), params, length, chunk, repeats)[0]


def random_params(config: HybridConfig, seed: int = 0):
    """Random weights with the model's initial distribution, drawn with numpy from the parameter shapes
    (`jax.eval_shape`; running the Flax init would cost seconds per model): matrices normal(0, init_std),
    biases 0, norm scales 1."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = getattr(path[-1], "key", str(path[-1]))
        if name == "bias":
            return jnp.zeros(leaf.shape, leaf.dtype)
        if len(leaf.shape) == 1:
            return jnp.ones(leaf.shape, leaf.dtype)
        return jnp.asarray(rng.normal(0.0, config.init_std, leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, hybrid_abstract_params(config))


def linear_fit(x, y) -> dict:
    """Least-squares `y = slope * x + intercept` and its R^2."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = float(np.sum((y - (slope * x + intercept)) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"slope": float(slope), "intercept": float(intercept),
            "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")}


def _train_speed(workdir: str) -> float:
    speeds = [r["tokens_per_s"] for r in read_metrics(os.path.join(workdir, METRICS_FILE)) if "tokens_per_s" in r]
    speeds = speeds[1:]  # the first window includes compilation
    return sum(speeds) / len(speeds) if speeds else float("nan")


def quality_table(ctx: TableContext) -> Table:
    rows, curves, data_name = [], [], None
    for label, variant in VARIANTS:
        cfg = variant_config(ctx, variant)
        workdir = variant_workdir(ctx, variant)
        ctx.log(f"[hybrid_scaling] {label}: training in {workdir} (reused if already complete)")
        summary = train(cfg, workdir, log=ctx.log)
        val, t = summary["validation"], cfg.train
        mc = model_config(cfg.model.to_dict())
        data_name = cfg.data.source
        rows.append([label, "/".join(mc.layer_pattern), mc.window, hybrid_count_params(mc), val["bits_per_byte"],
                     val["loss"], summary["step"], summary["step"] * t.batch_size * t.seq_len,
                     _train_speed(workdir), hybrid_state_bytes(mc, 1) / 1024])
        curves.append((label, os.path.join(workdir, METRICS_FILE)))
    os.makedirs(ctx.results_dir, exist_ok=True)
    figure = "hybrid_scaling_loss.png"
    plot_losses(curves, os.path.join(ctx.results_dir, figure), title=f"{table_preset(ctx)}: hybrid vs full attention")
    t = cfg.train
    return Table(
        name="hybrid_scaling",
        title=f"Hybrid (GLA + sliding-window attention) vs full attention ({table_preset(ctx)}, "
              f"{t.num_steps} steps of {t.batch_size}x{t.seq_len} tokens, data {data_name})",
        columns=["model", "layer pattern", "attention window", "parameters", "val bits/byte", "val loss (nats/token)",
                 "train steps", "train tokens", "train tokens/s", "decode state at batch 1 (KiB)"],
        rows=rows,
        notes=[
            f"val bits/byte and loss: measured in this run by the training loop's final evaluation "
            f"({val['tokens']:,} held-out tokens, the same windows for both models).",
            f"Both models: trained from scratch by neurojax.train.train with the same data, schedule "
            f"(lr {t.learning_rate}, warmup {t.warmup_steps}), seed {t.seed} and budget; the full-attention twin is "
            f"the same HybridConfig with layer_pattern=('swa',) and window = seq_len = {t.seq_len} (plain causal "
            "attention). A short budget: the gap is indicative only.",
            "parameters and decode state: computed from shapes (jax.eval_shape); the full-attention state here is "
            f"its KV cache for a {t.seq_len}-token context. train tokens/s: measured during training (first logging "
            "window, which includes compilation, excluded).",
        ],
        figures=[figure],
    )


def scaling_tables(ctx: TableContext, lengths: Optional[tuple] = None) -> list[Table]:
    base = model_config(run_config(table_preset(ctx)).model.to_dict())
    lengths = tuple(int(n) for n in (lengths or LENGTHS or [m * base.window for m in LENGTH_MULTIPLES]))
    hybrid_params = random_params(base)
    full_params = None
    rows, hyb_ms, full_ms = [], [], []
    for n in lengths:
        full_cfg = full_attention_twin(base, n)
        if full_params is None:  # parameter shapes do not depend on the window
            full_params = random_params(full_cfg)
        ctx.log(f"[hybrid_scaling] prefill of {n} tokens: hybrid and full attention")
        th = time_prefill(base, hybrid_params, n, PREFILL_CHUNK, REPEATS)
        tf = time_prefill(full_cfg, full_params, n, PREFILL_CHUNK, REPEATS)
        mh, mf = hybrid_state_bytes(base, 1), hybrid_state_bytes(full_cfg, 1)
        hyb_ms.append(1e3 * th)
        full_ms.append(1e3 * tf)
        rows.append([n, 1e3 * th, 1e3 * tf, n / th, n / tf, mh / 1024, mf / 1024, mf / mh])
    fits = {"hybrid (GLA + SWA)": linear_fit(lengths, hyb_ms), "full attention": linear_fit(lengths, full_ms)}
    h = fits["hybrid (GLA + SWA)"]
    ttft = Table(
        name="hybrid_scaling_ttft",
        title=f"Time to first token and decoding-state memory vs prompt length ({table_preset(ctx)}, random "
              f"weights, batch 1, {jax.default_backend()})",
        columns=["prompt tokens", "hybrid TTFT (ms)", "full attention TTFT (ms)", "hybrid prefill tokens/s",
                 "full attention prefill tokens/s", "hybrid state (KiB)", "full attention KV cache (KiB)",
                 "memory ratio (full / hybrid)"],
        rows=rows,
        notes=[
            "Weights: random, drawn in this run from the models' initial distribution (matrices normal(0, "
            "init_std), biases 0, norm scales 1); TTFT does not depend on their values.",
            f"TTFT: measured in this run: wall time of one jitted prefill of a random prompt returning the last "
            f"position's logits, median of {REPEATS} runs; compilation excluded (compiled ahead of time). "
            f"Prompts are prefilled in chunks of {PREFILL_CHUNK} tokens (lax.scan over chunks carrying the "
            "decoding state): the sliding-window sequence form is quadratic in the chunk length, "
            "so chunking keeps the hybrid linear in the prompt length.",
            f"Full attention: the same code with every layer softmax attention and window = prompt length, so "
            f"each chunk attends over a KV buffer holding the whole prompt (empty slots masked): work ~ L (L + "
            f"{PREFILL_CHUNK}).",
            f"Memory: computed (hybrid_state_bytes, float32, batch 1). Hybrid: GLA states "
            f"[kv heads, head_dim, head_dim] + a {base.window}-slot ring buffer per SWA layer: constant in the "
            f"prompt length beyond the window ({base.window} tokens). Full attention: keys and values of every "
            "position in every layer: linear in the prompt length.",
            f"Hybrid TTFT least-squares linear fit: TTFT = {h['slope']:.4g} ms/token x L "
            f"{'-' if h['intercept'] < 0 else '+'} {abs(h['intercept']):.4g} ms, "
            f"R^2 = {h['r2']:.4f} (computed from the measured rows; full attention in the next table).",
        ],
    )
    fit = Table(
        name="hybrid_scaling_fit",
        title="Least-squares linear fit of TTFT vs prompt length (TTFT = slope x L + intercept)",
        columns=["model", "slope (ms per 1k tokens)", "intercept (ms)", "R^2", "lengths fitted"],
        rows=[[label, 1e3 * f["slope"], f["intercept"], f["r2"], f"{lengths[0]}-{lengths[-1]}"]
              for label, f in fits.items()],
        notes=["Computed in this run from the measured TTFT rows above (numpy.polyfit, degree 1). An R^2 near 1 "
               "means TTFT grows linearly with the prompt; full attention's cost per token grows with L."],
    )
    return [ttft, fit]


@register_table("hybrid_scaling", "SpikingBrain-style hybrid vs full attention: bits/byte at a short budget, "
                "time to first token and decode-state memory vs prompt length")
def build(ctx: TableContext) -> list[Table]:
    return [quality_table(ctx), *scaling_tables(ctx)]
