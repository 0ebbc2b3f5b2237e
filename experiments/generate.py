"""Generate text from a trained model (MatMul-free LM, or the Transformer++ with its KV cache).

    python -m experiments.generate --workdir=workdir/tiny --prompt="def main(" --max_new_tokens=200
    python -m experiments.generate --workdir=workdir/tiny --prompt="import " --temperature=0   # greedy

The prompt is tokenized with the run's tokenizer (an imported checkpoint's `tokenizer.json` /
`tokenizer.model`, else bytes) and, by default, preceded by the document start (BOS for a
subword tokenizer; the byte model's separator EOS, as documents are in training); generation
stops at the next EOS.
"""
import os
import time

import jax
import numpy as np
from absl import flags

from experiments import _cli
from neurojax.data import ByteTokenizer
from neurojax.errors import NeurojaxError
from neurojax.interop.hf_checkpoint import workdir_tokenizer
from neurojax.fixedpoint.io import load_int_model
from neurojax.fixedpoint.lm import IntLM
from neurojax.fixedpoint.model import device_params
from neurojax.inference import SamplingConfig, generate
from neurojax.nn import inference_variables
from neurojax.nn.transformer_config import TransformerConfig
from neurojax.train import load_trained
from neurojax.train.model_factory import require_generatable

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding the checkpoint.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_PROMPT = flags.DEFINE_string("prompt", None, "Prompt text.")
_PROMPT_IDS = flags.DEFINE_list("prompt_ids", None, "Prompt as comma-separated token ids (instead of --prompt).")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Sampling temperature; 0 = greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Keep the k most likely tokens (0 = off).")
_TOP_P = flags.DEFINE_float("top_p", 0.95, "Nucleus sampling mass (1 = off).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1, "Independent samples of the same prompt.")
_DOC_START = flags.DEFINE_bool("doc_start", True, "Precede the prompt with the document start "
                               "(BOS, or the byte model's EOS separator).")
_INTEGER = flags.DEFINE_bool("integer", False, "Generate with the integer-only model that experiments/quantize.py "
                             "saved in <workdir>/integer (no float op in its forward pass).")


def _prompt_ids(tok) -> np.ndarray:
    if (_PROMPT.value is None) == (_PROMPT_IDS.value is None):
        raise NeurojaxError("give exactly one of --prompt or --prompt_ids")
    if _PROMPT_IDS.value is not None:
        try:
            ids = np.array([int(v) for v in _PROMPT_IDS.value], np.int64)
        except ValueError as e:
            raise NeurojaxError(f"--prompt_ids must be comma-separated integers ({e})") from None
    else:
        ids = tok.encode(_PROMPT.value)
    if ids.size == 0:
        raise NeurojaxError("empty prompt: give at least one character (or token id)")
    start = tok.EOS if isinstance(tok, ByteTokenizer) else tok.BOS
    if _DOC_START.value and start is not None:
        ids = np.concatenate([[start], ids])
    return ids


def main(argv):
    if not _WORKDIR.value:
        raise NeurojaxError("--workdir is required")
    if _NUM_SAMPLES.value < 1:
        raise NeurojaxError(f"--num_samples must be positive, got {_NUM_SAMPLES.value}")
    sampling = SamplingConfig(temperature=_TEMPERATURE.value, top_k=_TOP_K.value, top_p=_TOP_P.value)
    sampling.validate()
    tok = workdir_tokenizer(_WORKDIR.value)
    ids = _prompt_ids(tok)
    if _INTEGER.value:
        int_model = load_int_model(os.path.join(_WORKDIR.value, "integer"))
        model, variables, step = IntLM.of(int_model), device_params(int_model), "integer model"
    else:
        trained = load_trained(_WORKDIR.value, _STEP.value)
        config = require_generatable(trained.model.config, "experiments.generate")
        model = trained.model
        variables = {"params": trained.params} if isinstance(config, TransformerConfig) \
            else inference_variables(trained.model, trained.params)
        step = f"checkpoint step {trained.step}"
    prompt = np.repeat(ids[None], _NUM_SAMPLES.value, axis=0)
    start = time.perf_counter()
    out = generate(model, variables, prompt, _MAX_NEW.value, jax.random.PRNGKey(_SEED.value), sampling,
                   eos_id=tok.EOS)
    out = np.asarray(jax.device_get(out))
    seconds = time.perf_counter() - start
    for i, row in enumerate(out):
        end = np.nonzero(row == tok.EOS)[0] if tok.EOS is not None else np.zeros(0, int)
        text = tok.decode(ids) + tok.decode(row[: end[0]] if end.size else row)
        if _NUM_SAMPLES.value > 1:
            _cli.say(f"--- sample {i + 1}")
        _cli.say(text)
    _cli.say(f"[{out.size} tokens in {seconds:.2f} s including compilation; {step}]")


if __name__ == "__main__":
    _cli.run(main)
