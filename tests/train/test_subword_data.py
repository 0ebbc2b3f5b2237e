"""`data.tokenizer`: a run reads its corpus in a subword tokenizer's ids (an imported model's own), bits per
byte divides by the bytes those ids spell, old run configs (without the field) resume unchanged, and a GGUF
imported by `experiments/convert.py --from_gguf` trains and converts on its own tokens."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from neurojax.data.corpus import documents, load_corpus, retokenize
from neurojax.data.hf_tokenizer import load_tokenizer
from neurojax.errors import NeurojaxError
from neurojax.train import run_config
from neurojax.train.data_setup import load_run_data
from neurojax.train.workdir import identity
from tests.interop.gguf_files import TRAIN_TEXT, TinySpec, tiny_tokenizer, write_tiny_gguf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def text_dir(tmp_path):
    d = tmp_path / "text"
    d.mkdir()
    for i in range(6):
        (d / f"doc{i}.txt").write_text(f"Document {i}: héllo wörld, 12345.\n" + TRAIN_TEXT[: 300 + 40 * i])
    return str(d)


@pytest.fixture
def tokenizer_file(tmp_path):
    path = str(tmp_path / "tok" / "tokenizer.json")
    os.makedirs(os.path.dirname(path))
    tiny_tokenizer().save(path)
    return path


def _cfg(text_dir, tokenizer, vocab=320):
    cfg = run_config("micro")
    cfg.model.vocab_size = vocab
    cfg.data.source, cfg.data.tokenizer = text_dir, tokenizer
    cfg.data.validation_fraction = 0.3
    cfg.train.batch_size, cfg.train.seq_len = 2, 16
    return cfg


def test_corpus_is_read_in_the_tokenizers_ids(text_dir, tokenizer_file):
    data = load_run_data(_cfg(text_dir, tokenizer_file), eval_batches=0)
    tok = load_tokenizer(tokenizer_file)
    corpus = load_corpus(text_dir, 0.3)
    want = np.concatenate([np.r_[tok.encode(d), tok.EOS] for d in documents(corpus.train)]).astype(np.int32)
    np.testing.assert_array_equal(data.train_tokens, want)
    assert data.train_tokens.max() < 320 and "tokenizer.json" in data.name
    # bits per byte's denominator: the ids' byte lengths sum to the UTF-8 bytes of the documents they spell
    val = retokenize(corpus.validation, tok)
    assert data.byte_lengths[val].sum() == sum(len(d.encode("utf-8")) for d in documents(corpus.validation))
    assert data.byte_lengths[tok.EOS] == 0
    # the same data without the tokenizer is the byte stream
    assert len(load_run_data(_cfg(text_dir, ""), eval_batches=1).train_tokens) == len(corpus.train)


def test_bad_tokenizer_settings(text_dir, tokenizer_file, tmp_path):
    with pytest.raises(NeurojaxError, match="does not exist"):
        load_run_data(_cfg(text_dir, str(tmp_path / "nope")))
    with pytest.raises(NeurojaxError, match="320 tokens but the model's vocab_size is 512"):
        load_run_data(_cfg(text_dir, tokenizer_file, vocab=512))
    cfg = _cfg(text_dir, tokenizer_file)
    cfg.data.source = "synthetic"
    with pytest.raises(NeurojaxError, match="synthetic"):
        load_run_data(cfg)


def test_configs_written_before_the_field_resume():
    old = json.loads(json.dumps(run_config("micro").to_dict()))
    del old["data"]["tokenizer"]
    new = json.loads(json.dumps(run_config("micro").to_dict()))
    assert identity(old) == identity(new)
    new["data"]["tokenizer"] = "/some/tokenizer.json"
    assert identity(old) != identity(new)


@pytest.mark.slow
def test_gguf_import_trains_and_converts_on_its_own_tokens(tmp_path, text_dir):
    from neurojax.train import load_trained, train
    from neurojax.train.convert import Calibration, continual_config, convert_workdir
    from neurojax.train.workdir import read_run_config

    gguf_path = str(tmp_path / "tiny.gguf")
    write_tiny_gguf(gguf_path, TinySpec(context=128))
    teacher = str(tmp_path / "teacher")
    r = subprocess.run([sys.executable, "-m", "experiments.convert", f"--from_gguf={gguf_path}",
                        f"--workdir={teacher}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not [p for p in os.listdir(tmp_path) if ".gguf-hf-" in p]  # the intermediate directory is gone
    record = read_run_config(teacher)
    assert record["data"]["tokenizer"] == os.path.join(teacher, "hf")
    # the same command again refuses the existing workdir before any work
    r = subprocess.run([sys.executable, "-m", "experiments.convert", f"--from_gguf={gguf_path}",
                        f"--workdir={teacher}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "already exists" in r.stderr
    # point the imported run at the small text corpus (its recorded tokenizer stays)
    record["data"]["source"], record["data"]["validation_fraction"] = text_dir, 0.3
    record["train"].update(batch_size=2, seq_len=16)
    with open(os.path.join(teacher, "config.json"), "w") as f:
        json.dump(record, f)
    converted = str(tmp_path / "converted")
    convert_workdir(teacher, converted, calibration=Calibration(1, 2, 16), log=lambda s: None)
    cfg = continual_config(converted, num_steps=4, kl_weight=1.0)
    assert cfg.data.tokenizer == os.path.join(teacher, "hf")
    train(cfg, str(tmp_path / "student"), log=lambda s: None)
    done = load_trained(str(tmp_path / "student"))
    assert done.step == 4
