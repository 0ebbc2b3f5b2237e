"""Tables: the integer-only model vs the float (fake-quant ternary) model it was converted from.

Reuses the ternary run of `ternary_vs_fp` (same config, same workdir), calibrates static
scales on training batches, converts, and scores both models on the same validation tokens.
"""

from neurojax.eval.integer import quantize_trained, score_integer
from neurojax.fixedpoint import IntQuantConfig
from neurojax.tables.registry import Table, TableContext, register_table
from neurojax.tables.ternary_vs_fp import run_variant
from neurojax.train.data_setup import load_run_data

EVAL_BATCHES = 16
ABLATION_EVAL_BATCHES = 8
ACT_BITS = (6, 8, 10, 12)
HOW = ("bits/byte and top-1 agreement: measured in this run on {tokens:,} held-out tokens; the integer "
       "model's logits are read back as int x scale only for scoring. Saturations: counted by the integer "
       "forward pass.")


def _rel(r: dict) -> float:
    return 100 * (r["int_bits_per_byte"] - r["float_bits_per_byte"]) / r["float_bits_per_byte"]


@register_table("integer_model", "Integer-only fixed-point model vs float: accuracy, agreement, per-layer SQNR, "
                "width ablation")
def build(ctx: TableContext) -> list[Table]:
    trained = run_variant(ctx, full_precision=False)
    data = load_run_data(trained.config, eval_batches=EVAL_BATCHES)
    qcfg = IntQuantConfig()
    ctx.log("[integer_model] calibrating and converting (defaults: 8-bit BitLinear inputs, 24-bit state/residual)")
    int_model = quantize_trained(trained, qcfg, data=data)
    r = score_integer(trained, int_model, EVAL_BATCHES, data=data)
    main = Table(
        name="integer_model",
        title=f"Integer-only vs float MatMul-free LM ({ctx.preset} preset, {data.name})",
        columns=["model", "val bits/byte", "vs float (%)", "top-1 agreement (%)", "saturations", "float ops in forward"],
        rows=[["float (fake-quant ternary, int8 activations)", r["float_bits_per_byte"], 0.0, 100.0, 0, "yes"],
              ["integer-only (8-bit act., 24-bit state/residual)", r["int_bits_per_byte"], _rel(r),
               100 * r["top1_agreement"], r["overflow"], "none (checked on the jaxpr in tests)"]],
        notes=[HOW.format(tokens=r["tokens"]),
               "Paper claim (Loihi 2 paper, 370M model): quantized with no accuracy loss; target here: within 1% "
               "bits/byte and >= 97% top-1 agreement."],
    )
    layers = trained.model.config.num_layers
    points = ["attn/i", "attn/f", "attn/h", "attn/g", "resid_mid", "mlp/gate_up", "resid_out"]
    sqnr = r["sqnr_db"]
    sqnr_rows = [[f"layer {l}"] + [sqnr.get(f"layers_{l}/{p}", float("nan")) for p in points] for l in range(layers)]
    sqnr_rows.append(["embedding / logits", sqnr.get("embed", float("nan")), "", "", "", "", "",
                      sqnr.get("logits", float("nan"))])
    per_layer = Table(
        name="integer_model_sqnr",
        title="Per-layer error of the integer model's activations (SQNR, dB; higher is better)",
        columns=["layer"] + points, rows=sqnr_rows,
        notes=["SQNR = 10 log10(sum x^2 / sum (x - x_int * scale)^2) against the float model's activation at the "
               "same point, measured in this run on the validation tokens above."],
    )
    rows = []
    for pow2 in (False, True):
        for bits in ACT_BITS:
            q = IntQuantConfig(act_bits=bits, power_of_two=pow2)
            ctx.log(f"[integer_model] ablation: {bits}-bit activations, power-of-two scales {pow2}")
            ra = score_integer(trained, quantize_trained(trained, q, data=data), ABLATION_EVAL_BATCHES, data=data)
            rows.append([bits, "yes" if pow2 else "no", ra["int_bits_per_byte"], _rel(ra),
                         100 * ra["top1_agreement"], ra["overflow"]])
    ablation = Table(
        name="integer_model_ablation",
        title="Ablation: BitLinear input width and power-of-two static scales (integer model, no retraining)",
        columns=["activation bits", "power-of-two scales", "val bits/byte", "vs float (%)", "top-1 agreement (%)",
                 "saturations"],
        rows=rows,
        notes=[HOW.format(tokens=ra["tokens"]) + " The float model was trained with 8-bit activations."],
    )
    return [main, per_layer, ablation]
