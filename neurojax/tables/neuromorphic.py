"""Table: the integer MatMul-free LM on emulated Loihi 2-like cores vs an edge GPU transformer.

The preset's trained ternary model is converted to the integer model, compiled onto the
emulated chip, checked bit for bit against the integer model, and run in prefill and
generation modes; its event counts go through the cost model (`neuromorphic.cost`). The
370M row scales the emulated per-token counts by the compiled structure's size (estimated);
the GPU rows are a roofline estimate for a 370M fp16 transformer on a Jetson Orin Nano.
"""
import math

import jax
import numpy as np

from neurojax.eval.integer import quantize_trained
from neurojax.fixedpoint import IntQuantConfig, int_forward
from neurojax.neuromorphic import cost
from neurojax.neuromorphic.chip import CHIPS
from neurojax.neuromorphic.compiler import compile_model
from neurojax.neuromorphic.emulate import first_mismatch, run_tokens
from neurojax.nn.config import preset as model_preset
from neurojax.tables.registry import Table, TableContext, register_table
from neurojax.tables.ternary_vs_fp import run_variant
from neurojax.train.data_setup import load_run_data

CHIP = "loihi2_32bit"
SEQ_LENS = (16, 64)
GENERATE_TOKENS = 4
ENERGY = "loihi2_assumed"


def _bitlinear_weights(cfg) -> int:
    return cfg.num_layers * (4 * cfg.d_model ** 2 + 3 * cfg.d_model * cfg.ffn_size) + cfg.vocab_size * cfg.d_model


def _neurons(cfg) -> int:
    return cfg.num_layers * (cfg.d_model + cfg.ffn_size) + cfg.vocab_size


@register_table("neuromorphic", "Integer MatMul-free LM on emulated neuromorphic cores: bit-exactness, "
                "throughput and energy per token vs an edge-GPU transformer")
def build(ctx: TableContext) -> list[Table]:
    trained = run_variant(ctx, full_precision=False)
    data = load_run_data(trained.config, eval_batches=4)
    im = quantize_trained(trained, IntQuantConfig(), data=data)
    ctx.log(f"[neuromorphic] compiling the integer model onto chip {CHIP!r}")
    cm = compile_model(im, CHIPS[CHIP])
    rep = cm.report()
    tokens = np.concatenate([np.asarray(w).reshape(-1) for w in data.validation])[:max(SEQ_LENS)].astype(np.int32)
    params = jax.tree_util.tree_map(np.asarray, im.params)
    _, _, diag = int_forward(im.spec, params, tokens[None], with_taps=True)
    reference = {k: np.asarray(v)[0] for k, v in diag["taps"].items()}
    rows, per_token = [], {}
    for n in SEQ_LENS:
        ctx.log(f"[neuromorphic] emulating prefill of {n} tokens")
        emu = run_tokens(cm, tokens[:n])
        mismatch = first_mismatch(cm, emu, {k: v[:n] for k, v in reference.items()})
        c = cost.run_cost(emu.trace, ENERGY, placement=cm.placement)
        rows.append([f"{ctx.preset} (emulated)", "prefill", n, n / c.total_time_s, 1e3 * c.total_energy_j / n,
                     1e3 * c.total_time_s, "yes" if mismatch is None else f"NO: {mismatch}"])
        per_token = {k: v / n for k, v in c.counts.items()}
    ctx.log(f"[neuromorphic] emulating generation of {GENERATE_TOKENS} tokens")
    emu = run_tokens(cm, tokens[:GENERATE_TOKENS], mode="generate")
    mismatch = first_mismatch(cm, emu, {k: v[:GENERATE_TOKENS] for k, v in reference.items()})
    g = cost.run_cost(emu.trace, ENERGY, placement=cm.placement).per(GENERATE_TOKENS)
    rows.append([f"{ctx.preset} (emulated)", "generate", GENERATE_TOKENS, 1 / g.total_time_s,
                 1e3 * g.total_energy_j, "-", "yes" if mismatch is None else f"NO: {mismatch}"])
    # 370M: per-token counts scaled by synapses (synaptic ops) and neurons (the rest), estimated
    big, small = model_preset("370M"), trained.model.config
    syn_ratio, neuron_ratio = _bitlinear_weights(big) / _bitlinear_weights(small), _neurons(big) / _neurons(small)
    counts = {k: v * (syn_ratio if k == "synops" else neuron_ratio) for k, v in per_token.items()}
    chip = CHIPS[CHIP]
    cores = max(rep["cores"], math.ceil(_bitlinear_weights(big) * chip.weight_bits / 8 / chip.memory_per_core_bytes))
    chips = math.ceil(cores / chip.cores_per_chip)
    depth = 1 + (cm.depth - 1) * big.num_layers / small.num_layers
    est_prefill = cost.estimate(counts, cores, chips, 1, ENERGY)
    est_gen = cost.estimate(counts, cores, chips, depth + 1, ENERGY)
    for mode, e in (("prefill", est_prefill), ("generate", est_gen)):
        rows.append(["370M (estimated)", mode, "any", 1 / e.total_time_s, 1e3 * e.total_energy_j, "-", "n/a"])
    shape = cost.TRANSFORMER_370M_FP16
    gpu_rows = []
    for n in (max(SEQ_LENS), cost.PAPER_TTFT_PROMPT_TOKENS):
        dec = cost.gpu_decode(shape, "jetson_orin_nano", context=n)
        ttft = cost.gpu_ttft(shape, n, "jetson_orin_nano")
        ttft_nm = (n + depth) * est_prefill.total_time_s
        gpu_rows.append([n, dec.tokens_per_s, 1e3 * dec.energy_j, 1e3 * ttft.time_s, 1 / est_gen.total_time_s,
                         1e3 * est_gen.total_energy_j, 1e3 * ttft_nm,
                         (1 / est_gen.total_time_s) / dec.tokens_per_s, dec.energy_j / est_gen.total_energy_j,
                         ttft.time_s / ttft_nm])
    main = Table(
        name="neuromorphic",
        title=f"Integer MatMul-free LM on emulated neuromorphic cores (chip {CHIP}, energy model {ENERGY})",
        columns=["model", "mode", "tokens", "tokens/s", "mJ/token", "run time (ms)", "bit-exact vs integer model"],
        rows=rows,
        notes=[f"Compiled network: {rep['cores']} cores on {rep['chips']} chip(s), {rep['neuron_groups']} neuron groups, "
               f"{rep['synapses']:,} synapses, max {rep['max_memory_per_core_bytes']:,} B/core, pipeline depth "
               f"{rep['pipeline_depth_steps']} steps (prefill 1 step/token, generation {rep['steps_per_token_generate']}).",
               "Emulated rows: event counts measured by the interpreter in this run on validation tokens, bit-exact "
               "check against the integer model at every tap and token; time and energy from the cost model "
               f"'{ENERGY}' (Loihi 1 per-op constants reused for Loihi 2: an assumption, see neuromorphic/cost.py).",
               f"370M rows: estimated: the {ctx.preset} per-token counts scaled by BitLinear weights (x{syn_ratio:.0f}, "
               f"synaptic ops) and neurons (x{neuron_ratio:.1f}, the rest), on {cores} cores / {chips} chips "
               "(synapse memory), perfect load balance, the same cost model."],
    )
    versus = Table(
        name="neuromorphic_vs_gpu",
        title="370M: neuromorphic estimate vs a 370M fp16 transformer on Jetson Orin Nano (roofline estimate)",
        columns=["context/prompt tokens", "GPU tokens/s", "GPU mJ/token", "GPU TTFT (ms)", "neuro tokens/s",
                 "neuro mJ/token", "neuro TTFT (ms)", "throughput ratio", "energy ratio", "TTFT ratio"],
        rows=gpu_rows,
        notes=["GPU: roofline estimate (batch 1, weights + KV cache over 68 GB/s, 15 W; prefill at the derived "
               "fp16 peak), constants in neuromorphic/cost.py. Neuro: the 370M estimate above (generation waits "
               "for each token: depth + 1 steps; TTFT = prompt pipelined + depth steps).",
               f"Paper (Loihi 2 vs Orin Nano, 370M): {cost.PAPER_THROUGHPUT_RATIO}x throughput, "
               f"{cost.PAPER_ENERGY_PER_TOKEN_RATIO}x less energy per token, {cost.PAPER_TTFT_RATIO}x lower TTFT at "
               f"{cost.PAPER_TTFT_PROMPT_TOKENS} tokens (secondary summary)."],
    )
    return [main, versus]
