"""Benchmark: training throughput (ternary vs full precision) and 370M decode speed on this machine.

    python -m experiments.bench_model
    python -m experiments.bench_model --train_preset=tiny --gen_preset=370M --gen_tokens=64

Prints figures measured in this one run; the ratio is the target (ternary step cost
<= 1.3x the full-precision step). Not a test: nothing here asserts a time.
"""
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.inference import SamplingConfig, generate
from neurojax.nn import MatMulFreeLM, count_params, inference_variables, init_params, preset
from neurojax.train import init_train_state, make_optimizer, make_train_step, run_config

_TRAIN_PRESET = flags.DEFINE_string("train_preset", "tiny", "Preset whose training step is timed.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 10, "Timed steps per variant (after 2 warm-up steps).")
_GEN_PRESET = flags.DEFINE_string("gen_preset", "370M", "Preset whose generation speed is timed (random weights).")
_GEN_TOKENS = flags.DEFINE_integer("gen_tokens", 64, "Tokens to generate (batch 1).")
_PROMPT_LEN = flags.DEFINE_integer("prompt_len", 16, "Prompt length for the generation benchmark.")


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _train_tokens_per_s(full_precision: bool) -> tuple[float, float]:
    cfg = run_config(_TRAIN_PRESET.value)
    cfg.model.full_precision = full_precision
    t = cfg.train
    model = MatMulFreeLM(preset(_TRAIN_PRESET.value, full_precision=full_precision))
    optimizer = make_optimizer(t)
    state = init_train_state(model, optimizer, 0, t.seq_len)
    step = make_train_step(model, optimizer)
    batch = jnp.asarray(np.random.default_rng(0).integers(0, 256, (t.batch_size, t.seq_len + 1)), jnp.int32)
    for _ in range(2):
        state, m = step(state, batch)
    jax.block_until_ready(m)
    times = []
    for _ in range(_TRAIN_STEPS.value):
        start = time.perf_counter()
        state, m = step(state, batch)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return t.batch_size * t.seq_len / seconds, seconds


def main(argv):
    if _TRAIN_STEPS.value < 1 or _GEN_TOKENS.value < 2 or _PROMPT_LEN.value < 1:
        raise NeurojaxError("--train_steps, --prompt_len must be >= 1 and --gen_tokens >= 2")
    _cli.say(f"backend: {jax.default_backend()}, devices: {jax.device_count()}")
    tern, tern_s = _train_tokens_per_s(False)
    fp, fp_s = _train_tokens_per_s(True)
    _cli.say(f"train [{_TRAIN_PRESET.value}] ternary:        {tern:10,.0f} tokens/s  ({tern_s * 1e3:.1f} ms/step, median)")
    _cli.say(f"train [{_TRAIN_PRESET.value}] full precision: {fp:10,.0f} tokens/s  ({fp_s * 1e3:.1f} ms/step, median)")
    _cli.say(f"ratio ternary step / full-precision step: {tern_s / fp_s:.2f}x  (target <= 1.3x)")

    cfg = preset(_GEN_PRESET.value)
    model = MatMulFreeLM(cfg)
    params = init_params(model, jax.random.PRNGKey(0), seq_len=1)
    variables = inference_variables(model, params)
    del params
    prompt = np.random.default_rng(0).integers(0, cfg.vocab_size, (1, _PROMPT_LEN.value))
    greedy = SamplingConfig(temperature=0.0)
    short = max(2, _GEN_TOKENS.value // 4)
    timings = {}
    for n in (short, _GEN_TOKENS.value):  # two lengths: the difference removes prefill and overhead
        jax.block_until_ready(generate(model, variables, prompt, n, jax.random.PRNGKey(0), greedy))
        start = time.perf_counter()
        jax.block_until_ready(generate(model, variables, prompt, n, jax.random.PRNGKey(0), greedy))
        timings[n] = time.perf_counter() - start
    per_token = (timings[_GEN_TOKENS.value] - timings[short]) / (_GEN_TOKENS.value - short)
    _cli.say(f"generate [{_GEN_PRESET.value}, {count_params(cfg) / 1e6:.1f}M params, int8 ternary codes, batch 1]: "
             f"{1 / per_token:.1f} tokens/s per decode step ({per_token * 1e3:.1f} ms/token); "
             f"{_GEN_TOKENS.value} tokens incl. prefill of {_PROMPT_LEN.value}: {timings[_GEN_TOKENS.value]:.2f} s")
    _cli.say(f"peak resident memory of this process: {_peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    _cli.run(main)
