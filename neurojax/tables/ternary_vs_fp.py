"""Table: ternary MatMul-free LM vs the same architecture with full-precision weights.

Both are trained from scratch with the same data, schedule and seed, so the gap in
validation bits per byte is what ternary weights + int8 activations cost.
"""
import os

from neurojax.eval import evaluate_lm
from neurojax.nn.params import weight_memory_bits
from neurojax.tables.registry import Table, TableContext, register_table
from neurojax.train import TrainedModel, load_trained, run_config, train
from neurojax.train.data_setup import load_run_data
from neurojax.train.loop import METRICS_FILE
from neurojax.train.metrics import plot_losses, read_metrics

EVAL_BATCHES = 64  # validation batches scored per model (131k tokens at the tiny preset)
VARIANTS = (("ternary (MatMul-free)", False, "ternary"), ("full precision", True, "full_precision"))


def _config(ctx: TableContext, full_precision: bool):
    cfg = run_config(ctx.preset)
    cfg.model.full_precision = full_precision
    if ctx.num_steps:
        cfg.train.num_steps = ctx.num_steps
        cfg.train.warmup_steps = min(cfg.train.warmup_steps, max(1, ctx.num_steps // 10))
        cfg.train.eval_every = 0
        cfg.train.checkpoint_every = min(cfg.train.checkpoint_every, ctx.num_steps)
    if ctx.data:
        cfg.data.source = ctx.data
    return cfg


def variant_workdir(ctx: TableContext, full_precision: bool) -> str:
    sub = next(v[2] for v in VARIANTS if v[1] == full_precision)
    return os.path.join(ctx.workdir, f"{ctx.preset}_{sub}")


def run_variant(ctx: TableContext, full_precision: bool) -> TrainedModel:
    """Train (or reuse) the table's run of one variant; returns the trained model."""
    label = next(v[0] for v in VARIANTS if v[1] == full_precision)
    cfg = _config(ctx, full_precision)
    workdir = variant_workdir(ctx, full_precision)
    ctx.log(f"[{label}] training in {workdir} (reused if already complete)")
    train(cfg, workdir, log=ctx.log)
    return load_trained(workdir)


@register_table("ternary_vs_fp", "Ternary MatMul-free LM vs full-precision weights, same architecture")
def build(ctx: TableContext) -> Table:
    rows, curves = [], []
    for label, full_precision, _ in VARIANTS:
        trained = run_variant(ctx, full_precision)
        workdir, t = variant_workdir(ctx, full_precision), trained.config.train
        data = load_run_data(trained.config, eval_batches=EVAL_BATCHES)
        result = evaluate_lm(trained.model, {"params": trained.params}, data.validation, data.byte_lengths)
        memory = weight_memory_bits(trained.model.config)
        speeds = [r["tokens_per_s"] for r in read_metrics(os.path.join(workdir, METRICS_FILE))
                  if "tokens_per_s" in r][1:]  # the first window includes compilation
        rows.append([label, result["bits_per_byte"], result["loss"], result["perplexity"],
                     memory["projection"] / 8 / 2**20, memory["total"] / 8 / 2**20,
                     trained.step, trained.step * t.batch_size * t.seq_len,
                     sum(speeds) / len(speeds) if speeds else float("nan")])
        curves.append((label, os.path.join(workdir, METRICS_FILE)))
    os.makedirs(ctx.results_dir, exist_ok=True)
    figure = "ternary_vs_fp_loss.png"
    plot_losses(curves, os.path.join(ctx.results_dir, figure), title=f"{ctx.preset}: ternary vs full precision")
    tokens = result["tokens"]
    return Table(
        name="ternary_vs_fp",
        title=f"Ternary vs full-precision weights ({ctx.preset} preset, {data.name})",
        columns=["model", "val bits/byte", "val loss (nats/token)", "val perplexity", "projection weights (MiB)",
                 "all weights (MiB)", "train steps", "train tokens", "train tokens/s"],
        rows=rows,
        notes=[
            f"val bits/byte, loss, perplexity: measured in this run on {tokens:,} held-out tokens "
            f"({data.name} validation split).",
            "weight memory: computed from parameter shapes: ternary projections at 2 bits per weight "
            "(packed) + one float32 scale per tensor; embedding, norms and full-precision projections at "
            "32 bits.",
            "train tokens/s: measured during training on this machine (first logging window, which "
            "includes compilation, excluded).",
        ],
        figures=[figure],
    )
