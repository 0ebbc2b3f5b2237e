import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurojax.data import ByteTokenizer, check_token_ids
from neurojax.errors import NeurojaxError

TOK = ByteTokenizer()


def test_class_constants():
    assert (ByteTokenizer.PAD, ByteTokenizer.BOS, ByteTokenizer.EOS, ByteTokenizer.vocab_size) == (256, 257, 258, 259)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_unicode(text):
    ids = TOK.encode(text, add_bos=True, add_eos=True)
    assert ids.dtype == np.int32
    assert TOK.decode(ids) == text
    assert TOK.num_bytes(ids) == len(text.encode("utf-8"))


def test_encode_is_utf8_bytes_with_specials():
    ids = TOK.encode("é€", add_bos=True, add_eos=True)
    assert ids.tolist() == [257, 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 258]
    assert TOK.encode("a").tolist() == [97]
    assert TOK.encode("").tolist() == []


def test_decode_skips_special_ids_and_replaces_bad_utf8():
    assert TOK.decode([256, 104, 257, 105, 258, 256]) == "hi"
    assert TOK.decode(np.array([0xFF, 97], np.int32)) == "\ufffda"


def test_num_bytes_counts_only_byte_tokens():
    assert TOK.num_bytes([0, 255, 256, 257, 258, 65]) == 3
    assert TOK.num_bytes(np.zeros((2, 3), np.int32)) == 6


def test_check_token_ids_accepts_in_range():
    check_token_ids(np.arange(259), 259)
    check_token_ids([], 259)


@pytest.mark.parametrize("ids, message", [
    ([1, 2, 259], "token id 259 at position 2 is outside the vocabulary [0, 259)"),
    ([-1, 0], "token id -1 at position 0 is outside the vocabulary [0, 259)"),
])
def test_check_token_ids_errors(ids, message):
    with pytest.raises(NeurojaxError) as info:
        check_token_ids(ids, 259)
    assert str(info.value) == message


def test_check_token_ids_2d_position_and_method():
    with pytest.raises(NeurojaxError, match=r"token id 300 at position \(1, 0\)"):
        check_token_ids(np.array([[1, 2], [300, 4]]), 259)
    with pytest.raises(NeurojaxError, match=r"\[0, 259\)"):
        TOK.check_ids([5, 1000])
