"""Table: the MatMul-free LM vs the Transformer++ baseline (LLaMA-style) at the same size.

The MatMul-free run is `ternary_vs_fp`'s ternary run (`run_variant`: reused when complete, so building
both tables trains it once). The Transformer++ (`transformer_<preset>`: same width, depth, FFN size and
byte vocabulary) is trained by the same `neurojax.train.train` with the same run config except the
`model` section (data, schedule, seed, budget: `ternary_vs_fp`'s `_config`). Then, in this run:

- validation bits per byte and loss (the same `EVAL_BATCHES` held-out windows for both);
- training tokens/s: the loop's logged speed (each run's own, possibly at different times) and the
  jitted training step of both timed back to back here (`TIMED_STEPS` steps of the run's batch
  shape, after a compiling step); generation tokens/s (jitted `generate`, greedy, `DECODE` shapes,
  compiled before timing, median of `REPEATS`): MatMul-free with its packed ternary inference
  variables, Transformer++ with its KV cache;
- parameters, weight memory (ternary at 2 bits + a float32 scale per tensor, all else float32) and
  decoding-state memory at `STATE_CONTEXT` tokens (recurrent state vs KV cache), from shapes.
"""
import os
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.eval import evaluate_lm
from neurojax.inference import SamplingConfig, generate
from neurojax.nn.lm import initial_state
from neurojax.nn.params import count_params, inference_variables, weight_memory_bits
from neurojax.nn.transformer import transformer_count_params, transformer_state_bytes
from neurojax.tables import ternary_vs_fp
from neurojax.tables.registry import Table, TableContext, register_table
from neurojax.train import TrainedModel, load_trained, train
from neurojax.train.data_setup import load_run_data
from neurojax.train.loop import METRICS_FILE
from neurojax.train.metrics import plot_losses, read_metrics
from neurojax.train.model_factory import is_transformer_preset, model_section
from neurojax.train.optim import make_optimizer
from neurojax.train.step import make_train_step

EVAL_BATCHES = ternary_vs_fp.EVAL_BATCHES  # validation batches scored per model
DECODE = {"batch": 8, "prompt": 16, "new_tokens": 128}  # generation throughput shapes
REPEATS = 3  # timed generations per model (median reported)
TIMED_STEPS = 5  # training steps timed per model in this run (after one compiling step)
STATE_CONTEXT = 2048  # tokens held by the decoding state in the memory column


def transformer_preset_for(preset: str) -> str:
    """The Transformer++ preset of the MatMul-free preset's size: `transformer_<preset>`."""
    name = f"transformer_{preset}"
    if not is_transformer_preset(name):
        raise NeurojaxError(f"the transformer_baseline table has no Transformer++ preset of the {preset!r} size "
                            f"(no {name!r}); use --preset=tiny, micro or 370M")
    return name


def transformer_config(ctx: TableContext) -> ml_collections.ConfigDict:
    """The MatMul-free run's config (data, schedule, seed, budget) with the Transformer++ `model` section."""
    cfg = ternary_vs_fp._config(ctx, False)
    cfg.model = ml_collections.ConfigDict(model_section(transformer_preset_for(ctx.preset)))
    return cfg


def transformer_workdir(ctx: TableContext) -> str:
    return os.path.join(ctx.workdir, f"{ctx.preset}_transformer")


def run_transformer(ctx: TableContext) -> TrainedModel:
    """Train (or reuse) the table's Transformer++ run; returns the trained model."""
    cfg, workdir = transformer_config(ctx), transformer_workdir(ctx)
    ctx.log(f"[Transformer++] training in {workdir} (reused if already complete)")
    train(cfg, workdir, log=ctx.log)
    return load_trained(workdir)


def train_speed(workdir: str) -> float:
    """Mean logged training tokens/s, the first window (which includes compilation) excluded."""
    speeds = [r["tokens_per_s"] for r in read_metrics(os.path.join(workdir, METRICS_FILE)) if "tokens_per_s" in r]
    speeds = speeds[1:]
    return sum(speeds) / len(speeds) if speeds else float("nan")


def train_step_speed(trained: TrainedModel, steps: int) -> float:
    """Tokens/s of the run's jitted training step (`make_train_step`) on random byte batches of the run's shape."""
    t = trained.config.train
    optimizer = make_optimizer(t)
    train_step = make_train_step(trained.model, optimizer)
    params = jax.tree_util.tree_map(jnp.array, trained.params)  # a copy: the step donates its state
    state = {"params": params, "opt_state": optimizer.init(params), "step": jnp.zeros((), jnp.int32),
             "rng": jax.random.PRNGKey(0)}
    batch = jax.random.randint(jax.random.PRNGKey(1), (t.batch_size, t.seq_len + 1), 0,
                               min(trained.model.config.vocab_size, 256), jnp.int32)
    state, m = train_step(state, batch)  # compile
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(steps):
        state, m = train_step(state, batch)
    jax.block_until_ready(m)
    return steps * t.batch_size * t.seq_len / (time.perf_counter() - start)


def decode_speed(model, variables, vocab_size: int, shapes: dict, repeats: int) -> float:
    """Generated tokens/s of greedy `generate` (batch x new tokens / median wall time; compiled first)."""
    prompt = np.asarray(jax.random.randint(jax.random.PRNGKey(0), (shapes["batch"], shapes["prompt"]), 0,
                                           min(vocab_size, 256)), np.int32)
    greedy = SamplingConfig(temperature=0.0)

    def once():
        return jax.block_until_ready(generate(model, variables, prompt, shapes["new_tokens"], jax.random.PRNGKey(0),
                                              greedy))

    once()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return shapes["batch"] * shapes["new_tokens"] / statistics.median(times)


def _bytes_of(tree) -> int:
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree)))


def matmulfree_state_bytes(config) -> int:
    """The MatMul-free LM's decoding state at batch 1 (one [d] vector per layer: any context length)."""
    return _bytes_of(jax.eval_shape(lambda: initial_state(config, 1)))


@register_table("transformer_baseline", "MatMul-free LM vs the Transformer++ baseline (LLaMA-style) at the same "
                "size: bits/byte, train and generation tokens/s, parameters, weight and state memory")
def build(ctx: TableContext) -> Table:
    transformer_preset = transformer_preset_for(ctx.preset)  # fail before any training
    runs = [("MatMul-free (ternary)", ternary_vs_fp.run_variant(ctx, False), ternary_vs_fp.variant_workdir(ctx, False)),
            ("Transformer++", run_transformer(ctx), transformer_workdir(ctx))]
    rows, curves, data = [], [], None
    for label, trained, workdir in runs:
        mc, t = trained.model.config, trained.config.train
        data = load_run_data(trained.config, eval_batches=EVAL_BATCHES)
        result = evaluate_lm(trained.model, {"params": trained.params}, data.validation, data.byte_lengths)
        if label.startswith("MatMul-free"):
            params, memory = count_params(mc), weight_memory_bits(mc)["total"] / 8
            variables, state = inference_variables(trained.model, trained.params), matmulfree_state_bytes(mc)
        else:
            params = transformer_count_params(mc)
            memory = 4 * params  # float32
            variables = {"params": trained.params}
            state = transformer_state_bytes(mc, 1, min(STATE_CONTEXT, mc.max_seq_len))
        ctx.log(f"[transformer_baseline] {label}: timing training steps and generation")
        step_speed = train_step_speed(trained, TIMED_STEPS)
        speed = decode_speed(trained.model, variables, mc.vocab_size, DECODE, REPEATS)
        rows.append([label, params, result["bits_per_byte"], result["loss"], trained.step,
                     trained.step * t.batch_size * t.seq_len, train_speed(workdir), step_speed, speed,
                     memory / 2**20, state / 1024])
        curves.append((label, os.path.join(workdir, METRICS_FILE)))
    os.makedirs(ctx.results_dir, exist_ok=True)
    figure = "transformer_baseline_loss.png"
    plot_losses(curves, os.path.join(ctx.results_dir, figure), title=f"{ctx.preset}: MatMul-free vs Transformer++")
    t = runs[0][1].config.train
    return Table(
        name="transformer_baseline",
        title=f"MatMul-free LM vs Transformer++ ({ctx.preset} / {transformer_preset}, {t.num_steps} steps of "
              f"{t.batch_size}x{t.seq_len} tokens, {data.name})",
        columns=["model", "parameters", "val bits/byte", "val loss (nats/token)", "train steps", "train tokens",
                 "train tokens/s (logged)", "train tokens/s (timed here)", "generation tokens/s",
                 "weights for inference (MiB)",
                 f"decode state at {STATE_CONTEXT} tokens, batch 1 (KiB)"],
        rows=rows,
        notes=[
            f"val bits/byte and loss: measured in this run on {result['tokens']:,} held-out tokens ({data.name} "
            "validation split, the same windows for both models).",
            f"Both models: trained from scratch by neurojax.train.train with the same data, schedule (lr "
            f"{t.learning_rate}, warmup {t.warmup_steps}), seed {t.seed} and budget; the MatMul-free run is the "
            "ternary_vs_fp table's (reused when complete). A short budget: the gap is indicative only.",
            "train tokens/s (logged): measured by each run's training loop (first logging window, which includes "
            "compilation, excluded); a reused run's figure dates from when it trained, under that moment's load. "
            f"train tokens/s (timed here): measured in this run, {TIMED_STEPS} jitted training steps of each model "
            "back to back (after a compiling step) on random byte batches of the run's shape. "
            "generation tokens/s: measured in this run: greedy generate of "
            f"{DECODE['new_tokens']} tokens after a {DECODE['prompt']}-token prompt, batch {DECODE['batch']}, "
            f"median of {REPEATS} after a compiling run ({jax.default_backend()}; MatMul-free through its packed "
            "ternary inference variables, Transformer++ with a KV cache sized prompt + new tokens).",
            "parameters, weights and decode state: computed from shapes (jax.eval_shape), estimated footprints, not "
            "measured allocations. Weights: ternary projections at 2 bits (packed) + one float32 scale per tensor, "
            "everything else float32; the Transformer++ all float32. Decode state: the MatMul-free LM's recurrent "
            f"state (one [d] vector per layer, constant in context); the Transformer++'s KV cache (float32 keys "
            f"and values of every layer) for {STATE_CONTEXT} tokens (or its max_seq_len if shorter).",
        ],
        figures=[figure],
    )
