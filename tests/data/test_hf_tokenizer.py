"""tokenizer.json (tokenizers) and tokenizer.model (SentencePiece) behind ByteTokenizer's interface.

Both tokenizers are trained here on Python-stdlib text (no downloads): a BPE tokenizer.json with the
`tokenizers` trainer and a LLaMA-style BPE tokenizer.model (UNK=0, BOS=1, EOS=2, byte fallback)
with SentencePiece's trainer.
"""
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurojax import NeurojaxError
from neurojax.data import ByteTokenizer
from neurojax.data.hf_tokenizer import (
    HFTokenizer,
    SentencePieceTokenizer,
    check_vocab_size,
    find_tokenizer_file,
    load_tokenizer,
)

TEXT = "\n".join(open(os.path.join(os.path.dirname(json.__file__), name)).read()
                 for name in ("__init__.py", "decoder.py", "encoder.py"))
SAMPLE = "def encode(self, obj):\n    return obj  # a comment"


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    """A byte-level BPE tokenizer.json whose post-processor adds <s> itself (as LLaMA's does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    directory = tmp_path_factory.mktemp("bpe")
    tok.save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture(scope="module")
def sp_dir(tmp_path_factory):
    import sentencepiece as spm

    directory = tmp_path_factory.mktemp("sp")
    corpus = directory / "corpus.txt"
    corpus.write_text(TEXT)
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(directory / "tokenizer"), vocab_size=500,
                                   model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                   character_coverage=1.0, minloglevel=2)
    os.remove(corpus)
    assert os.path.exists(directory / "tokenizer.model")
    return directory


def test_tokenizer_json_encodes_like_tokenizers_without_implicit_bos(bpe_dir):
    from tokenizers import Tokenizer

    tok = load_tokenizer(str(bpe_dir))
    assert isinstance(tok, HFTokenizer) and tok.vocab_size == 400
    assert (tok.UNK, tok.BOS, tok.EOS, tok.PAD) == (0, 1, 2, None)
    ids = tok.encode(SAMPLE)
    assert ids.dtype == np.int32
    reference = Tokenizer.from_file(str(bpe_dir / "tokenizer.json"))
    assert reference.encode(SAMPLE).ids[0] == 1  # its post-processor adds <s> ...
    assert ids.tolist() == reference.encode(SAMPLE).ids[1:]  # ... which encode leaves to add_bos
    wrapped = tok.encode(SAMPLE, add_bos=True, add_eos=True)
    assert wrapped[0] == 1 and wrapped[-1] == 2 and wrapped[1:-1].tolist() == ids.tolist()
    assert (wrapped == 1).sum() == 1
    assert tok.decode(wrapped) == SAMPLE == tok.decode(ids)
    assert tok.num_bytes(wrapped) == len(SAMPLE.encode("utf-8"))
    text = "naïve ünïcode → ok"  # byte-level: any text round-trips
    assert tok.decode(tok.encode(text)) == text and tok.num_bytes(tok.encode(text)) == len(text.encode())
    assert tok.decode([]) == "" and tok.decode(np.array([[1, 2]])) == ""
    assert tok.decode(np.concatenate([ids, [400, -1]])) == SAMPLE  # out of range ids are skipped


def test_sentencepiece_model_is_llama_style(sp_dir):
    import sentencepiece as spm

    tok = load_tokenizer(str(sp_dir))
    assert isinstance(tok, SentencePieceTokenizer) and tok.vocab_size == 500
    assert (tok.UNK, tok.BOS, tok.EOS, tok.PAD) == (0, 1, 2, None)
    sp = spm.SentencePieceProcessor(model_file=str(sp_dir / "tokenizer.model"))
    ids = tok.encode(SAMPLE, add_bos=True)
    assert ids[0] == 1 and ids[1:].tolist() == sp.encode(SAMPLE)
    assert tok.encode(SAMPLE).tolist() == sp.encode(SAMPLE)  # no BOS unless asked
    assert tok.encode(SAMPLE, add_eos=True)[-1] == 2
    assert tok.decode(ids) == sp.decode(sp.encode(SAMPLE))
    text = "données: 温度 ✓"  # byte fallback covers characters the corpus never had
    assert tok.decode(tok.encode(text, add_bos=True, add_eos=True)) == text
    assert tok.num_bytes(tok.encode(text, add_bos=True)) == len(text.encode("utf-8"))


@pytest.mark.parametrize("which", ["bpe", "sp", "byte"])
def test_same_interface_as_byte_tokenizer(which, bpe_dir, sp_dir):
    tok = {"bpe": lambda: load_tokenizer(str(bpe_dir / "tokenizer.json")),
           "sp": lambda: load_tokenizer(str(sp_dir / "tokenizer.model")), "byte": lambda: load_tokenizer(None)}[which]()
    for name in ("encode", "decode", "num_bytes", "check_ids", "vocab_size", "BOS", "EOS"):
        assert hasattr(tok, name), name
    ids = tok.encode("x = 1", add_bos=True, add_eos=True)
    assert ids.dtype == np.int32 and ids[0] == tok.BOS and ids[-1] == tok.EOS
    tok.check_ids(ids)
    with pytest.raises(NeurojaxError, match=f"token id {tok.vocab_size} at position 2"):
        tok.check_ids(np.array([0, 1, tok.vocab_size]))
    with pytest.raises(NeurojaxError, match="str"):
        tok.encode(b"bytes")
    check_vocab_size(tok, tok.vocab_size)
    with pytest.raises(NeurojaxError, match=f"{tok.vocab_size} tokens but the model's vocab_size is 32000"):
        check_vocab_size(tok, 32000)
    assert isinstance(load_tokenizer(None), ByteTokenizer)


def test_vocab_mismatch_names_the_file(bpe_dir, sp_dir):
    with pytest.raises(NeurojaxError) as err:
        load_tokenizer(str(bpe_dir), vocab_size=401)
    assert str(bpe_dir / "tokenizer.json") in str(err.value) and "401" in str(err.value)
    with pytest.raises(NeurojaxError) as err:
        load_tokenizer(str(sp_dir), vocab_size=499)
    assert str(sp_dir / "tokenizer.model") in str(err.value) and "500" in str(err.value)
    assert load_tokenizer(str(sp_dir), vocab_size=500).vocab_size == 500


def test_special_tokens_from_tokenizer_config(tmp_path, bpe_dir):
    (tmp_path / "tokenizer.json").write_bytes((bpe_dir / "tokenizer.json").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": {"content": "</s>"}, "eos_token": "<s>", "pad_token": "<unk>", "add_bos_token": True}))
    tok = load_tokenizer(str(tmp_path))
    assert (tok.BOS, tok.EOS, tok.PAD) == (2, 1, 0)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|nope|>"}))
    with pytest.raises(NeurojaxError, match="<\\|nope\\|>"):
        load_tokenizer(str(tmp_path))


def test_missing_bos_is_an_error_only_when_asked(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=300,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(tmp_path / "tokenizer.json"))
    ours = load_tokenizer(str(tmp_path))
    assert ours.BOS is None and ours.encode("a").size >= 1
    with pytest.raises(NeurojaxError, match="BOS"):
        ours.encode("a", add_bos=True)


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(NeurojaxError, match="does not exist"):
        load_tokenizer(str(tmp_path / "nope.json"))
    with pytest.raises(NeurojaxError, match="neither tokenizer.json nor tokenizer.model"):
        load_tokenizer(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(NeurojaxError, match="tokenizer.json"):
        load_tokenizer(str(tmp_path))
    bad = tmp_path / "sp"
    bad.mkdir()
    (bad / "tokenizer.model").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(NeurojaxError, match="SentencePiece"):
        load_tokenizer(str(bad))
    assert find_tokenizer_file(str(bad)) == str(bad / "tokenizer.model")


def test_a_directory_prefers_tokenizer_json(tmp_path, bpe_dir, sp_dir):
    (tmp_path / "tokenizer.json").write_bytes((bpe_dir / "tokenizer.json").read_bytes())
    (tmp_path / "tokenizer.model").write_bytes((sp_dir / "tokenizer.model").read_bytes())
    assert isinstance(load_tokenizer(str(tmp_path)), HFTokenizer)


_TEXTS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@settings(max_examples=40, deadline=None)
@given(text=_TEXTS)
def test_byte_level_ids_sum_to_the_texts_bytes(bpe_dir, text):
    """Bits per byte's denominator: the per-id byte lengths of a byte-level BPE add up to the UTF-8 bytes of
    any text (specials count 0), so a window's bytes are a sum over its ids."""
    tok = load_tokenizer(str(bpe_dir))
    lengths = tok.byte_lengths()
    assert lengths.shape == (tok.vocab_size,) and lengths[[tok.BOS, tok.EOS]].sum() == 0
    ids = tok.encode(text, add_bos=True, add_eos=True)
    assert lengths[ids].sum() == len(text.encode("utf-8"))


@settings(max_examples=40, deadline=None)
@given(text=_TEXTS)
def test_sentencepiece_ids_sum_to_the_texts_bytes(sp_dir, text):
    """The same for SentencePiece pieces (byte fallback, U+2581 as a space) over the text SentencePiece keeps
    (its normalizer collapses whitespace runs), plus the one space of the dummy prefix it puts before a
    non-empty text (decoding drops it)."""
    tok = load_tokenizer(str(sp_dir))
    lengths = tok.byte_lengths()
    ids = tok.encode(text, add_bos=True, add_eos=True)
    assert lengths[[tok.BOS, tok.EOS, tok.UNK]].sum() == 0
    assert lengths[ids].sum() == len(tok.decode(ids).encode("utf-8")) + (1 if len(ids) > 2 else 0)
