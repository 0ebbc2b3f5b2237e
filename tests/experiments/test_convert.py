"""experiments/convert.py end to end: a tiny HF-layout checkpoint in, every binary on the workdir, the
same checkpoint out; and its bad inputs (one `error:` line, nothing written)."""
import json
import os

import ml_dtypes
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from tests.experiments.cli_helpers import assert_one_error, run
CONFIG = {"model_type": "hgrn_bit", "vocab_size": 300, "hidden_size": 32, "num_hidden_layers": 2,
          "intermediate_size": 64, "hidden_ratio": 4, "num_heads": 1, "use_lower_bound": True,
          "rms_norm_eps": 1e-6, "torch_dtype": "bfloat16"}


def tiny_hf(directory, shards=2):
    """The spec's keys for CONFIG, random bf16 values, written with safetensors into `shards` files."""
    d, inter, v = CONFIG["hidden_size"], CONFIG["intermediate_size"], CONFIG["vocab_size"]
    shapes = {"model.embeddings.weight": (v, d), "model.lower_bounds": (2, d), "model.norm.weight": (d,),
              "lm_head.weight": (v, d), "lm_head.norm.weight": (d,)}
    for l in range(CONFIG["num_hidden_layers"]):
        p = f"model.layers.{l}"
        shapes.update({f"{p}.attn_norm.weight": (d,), f"{p}.mlp_norm.weight": (d,), f"{p}.attn.g_norm.weight": (d,),
                       f"{p}.mlp.gate_proj.weight": (2 * inter, d), f"{p}.mlp.gate_proj.norm.weight": (d,),
                       f"{p}.mlp.down_proj.weight": (d, inter), f"{p}.mlp.down_proj.norm.weight": (inter,)})
        for proj in "ifgo":
            shapes[f"{p}.attn.{proj}_proj.weight"] = (d, d)
            shapes[f"{p}.attn.{proj}_proj.norm.weight"] = (d,)
    rng = np.random.default_rng(0)
    tensors = {k: ((1 + 0.2 * rng.standard_normal(s)) if k.endswith("norm.weight") else 0.1 * rng.standard_normal(s))
               .astype(np.float32).astype(ml_dtypes.bfloat16) for k, s in shapes.items()}
    os.makedirs(directory)
    json.dump(CONFIG, open(os.path.join(directory, "config.json"), "w"))
    keys = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: tensors[k] for k in keys[i::shards]}, os.path.join(directory, name), metadata={"format": "pt"})
        weight_map.update({k: name for k in keys[i::shards]})
    json.dump({"metadata": {"total_size": sum(t.nbytes for t in tensors.values())}, "weight_map": weight_map},
              open(os.path.join(directory, "model.safetensors.index.json"), "w"))
    return tensors


def tokenizer_json(path, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([open(json.__file__).read()], trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(path))


def tensors_of(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(directory, name), framework="numpy") as f:
                out.update({k: f.get_tensor(k) for k in f.keys()})
    return out


@pytest.mark.slow
def test_convert_then_every_binary_then_back(tmp_path):
    src, workdir = tmp_path / "src", tmp_path / "wd"
    tensors = tiny_hf(src)
    tokenizer_json(src / "tokenizer.json", CONFIG["vocab_size"])
    result = run("convert", f"--from_hf={src}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr
    assert "importing 35 tensors" in result.stdout and "tokenizer.json" in result.stdout
    assert os.path.exists(workdir / "hf" / "tokenizer.json")

    result = run("generate", f"--workdir={workdir}", "--prompt=ab", "--max_new_tokens=5", "--temperature=0")
    assert result.returncode == 0, result.stderr
    assert "checkpoint step 0" in result.stdout
    out_json = tmp_path / "metrics.json"
    result = run("evaluate", f"--workdir={workdir}", "--max_batches=1", f"--output={out_json}")
    assert result.returncode == 0, result.stderr
    assert np.isfinite(json.load(open(out_json))["loss"])

    result = run("convert", f"--to_hf={tmp_path / 'out'}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(src))
    back = tensors_of(tmp_path / "out")
    assert back.keys() == tensors.keys()
    assert all(back[k].dtype == tensors[k].dtype and back[k].tobytes() == tensors[k].tobytes() for k in tensors)
    assert json.load(open(tmp_path / "out" / "config.json")) == CONFIG
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (src / "tokenizer.json").read_bytes()

    result = run("convert", f"--to_hf={tmp_path / 'f32'}", f"--workdir={workdir}", "--dtype=float32",
                 "--max_shard_size=20KB")
    assert result.returncode == 0, result.stderr
    index = json.load(open(tmp_path / "f32" / "model.safetensors.index.json"))
    assert len(set(index["weight_map"].values())) > 2
    back = tensors_of(tmp_path / "f32")
    assert all(back[k].dtype == np.float32 and np.array_equal(back[k], tensors[k].astype(np.float32))
               for k in tensors)

    result = run("convert", f"--to_hf={tmp_path / 'packed'}", f"--workdir={workdir}", "--packed_ternary")
    assert result.returncode == 0, result.stderr
    assert "packed ternary" in result.stdout
    assert os.path.exists(tmp_path / "packed" / "model.packed_ternary.safetensors")
    assert not os.path.exists(tmp_path / "packed" / "model.safetensors")


@pytest.mark.parametrize("args,needle", [
    ([], "--workdir"),
    (["--workdir=/tmp/never-written"], "exactly one"),
    (["--workdir=/tmp/never-written", "--from_hf=a", "--to_hf=b"], "exactly one"),
    (["--workdir=/tmp/never-written", "--from_hf=a", "--dtype=bfloat16"], "--to_hf only"),
    (["--workdir=/tmp/never-written", "--to_hf=b", "--packed_ternary", "--max_shard_size=1GB"], "--packed_ternary"),
    (["--workdir=/tmp/never-written", "--to_hf=b", "--dtype=int4"], "dtype"),
])
def test_convert_flag_errors(args, needle):
    assert_one_error(run("convert", *args), needle)
    assert not os.path.exists("/tmp/never-written")


def test_convert_bad_checkpoint_is_one_error_and_writes_nothing(tmp_path):
    src = tmp_path / "src"
    tiny_hf(src)
    shard = src / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-64])
    assert_one_error(run("convert", f"--from_hf={src}", f"--workdir={tmp_path / 'wd'}"), str(shard), "complete")
    assert sorted(os.listdir(tmp_path)) == ["src"]
    assert_one_error(run("convert", f"--from_hf={tmp_path / 'nope'}", f"--workdir={tmp_path / 'wd'}"), "config.json")
    assert_one_error(run("convert", f"--to_hf={tmp_path / 'out'}", f"--workdir={tmp_path / 'nope'}"),
                     "not a neurojax training workdir")
    assert sorted(os.listdir(tmp_path)) == ["src"]
