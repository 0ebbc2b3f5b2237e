"""Packed ternary matmul: the format (pack/unpack, layout, padding, scale), every
implementation against an int64 NumPy oracle, the int16 worst case, and the dispatch."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from neurojax.kernels import dispatch
from neurojax.kernels.ternary_matmul import (
    IMPLEMENTATIONS,
    OP,
    PackedTernary,
    pack,
    packed_rows,
    pallas,
    ternary_matmul,
    unpack,
    weight_bytes,
    xla,
)

from neurojax import NeurojaxError
from neurojax.quant.jaxpr_check import assert_integer_only

IMPLS = sorted(IMPLEMENTATIONS)


def _case(seed, m, k, n, zero_frac=0.3):
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, (n, k)).astype(np.int8)
    w[rng.random((n, k)) < zero_frac] = 0
    x = rng.integers(-128, 128, (m, k)).astype(np.int8)
    return x, w


def _oracle(x, w):
    return np.asarray(x, np.int64) @ np.asarray(w, np.int64).T


def test_layout_is_four_planes_of_two_bit_twos_complement():
    k, n = 5, 2
    w = np.zeros((n, k), np.int8)
    w[0, 0], w[0, 1], w[1, 4] = 1, -1, 1
    p = pack(w)
    k4 = packed_rows(k)
    assert k4 == 64 and p.data.shape == (64, 2) and p.data.dtype == jnp.uint8
    data = np.asarray(p.data)
    # input 0 is row 0 plane 0 (bits 0-1: 01 = +1); input 1 is row 1 plane 0 (11 = -1)
    assert data[0, 0] == 0b01 and data[1, 0] == 0b11
    # input 4 of output 1 is row 4, plane 0
    assert data[4, 1] == 0b01
    assert np.count_nonzero(data) == 3  # everything else, padding included, is zero
    # a weight in plane 2 (input 2*K4 + 3) sits in bits 4-5 of row 3
    w2 = np.zeros((1, 2 * k4 + 4), np.int8)
    w2[0, 2 * packed_rows(2 * k4 + 4) + 3] = -1
    assert np.asarray(pack(w2).data)[3, 0] == 0b11 << 4


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_pack_unpack_identity(n, k, seed):
    _, w = _case(seed, 1, k, n)
    p = pack(jnp.asarray(w), scale=0.5)
    assert p.data.shape == (packed_rows(k), n) and packed_rows(k) % 64 == 0
    assert packed_rows(k) * 4 >= k > packed_rows(k) * 4 - 256
    np.testing.assert_array_equal(np.asarray(unpack(p, k)), w)
    assert float(p.scale) == 0.5


def test_weight_memory_is_sixteen_times_smaller_than_float32():
    _, w = _case(0, 1, 1024, 5632)
    p = pack(w, scale=1.0)
    assert 4 * w.size / weight_bytes(p) > 15.99


def test_pack_rejects_non_ternary_and_bad_shapes():
    with pytest.raises(NeurojaxError, match=r"codes\[1, 2\] = 2"):
        pack(np.array([[0, 0, 0], [0, 0, 2]], np.int8))
    with pytest.raises(NeurojaxError, match="integer"):
        pack(np.zeros((2, 2), np.float32))
    with pytest.raises(NeurojaxError, match="N_out, K_in"):
        pack(np.zeros((2,), np.int8))


def test_pack_under_jit_matches_eager():
    _, w = _case(3, 1, 70, 9)
    a, b = pack(w), jax.jit(pack)(jnp.asarray(w))
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=8, deadline=None)
@given(m=st.integers(1, 37), k=st.integers(1, 260), n=st.integers(1, 150), seed=st.integers(0, 2**16))
def test_every_impl_equals_int64_oracle(impl, m, k, n, seed):
    x, w = _case(seed, m, k, n)
    got = ternary_matmul(jnp.asarray(x), pack(w), impl=impl)
    assert got.dtype == jnp.int32 and got.shape == (m, n)
    np.testing.assert_array_equal(np.asarray(got), _oracle(x, w))


@pytest.mark.parametrize("impl", IMPLS)
def test_leading_dims_and_decode_rows(impl):
    for m in (1, xla.DECODE_ROWS, xla.DECODE_ROWS + 1):
        x, w = _case(m, 2 * m, 150, 33)
        x3 = x.reshape(2, m, 150)
        got = ternary_matmul(jnp.asarray(x3), pack(w), impl=impl)
        np.testing.assert_array_equal(np.asarray(got), _oracle(x, w).reshape(2, m, 33))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("value", [-128, -127, 127])
def test_worst_case_magnitudes_are_exact(impl, sign, value):
    """Constant inputs against all-equal weights: the largest sums an int16 group can see
    (-128 takes the decode path's exact branch; +-127 its fast branch at its limit)."""
    k, n = 1024, 8
    x = np.full((2, k), value, np.int8)
    x[1, 3] = 0  # a second row that is not constant
    w = np.full((n, k), sign, np.int8)
    got = np.asarray(ternary_matmul(jnp.asarray(x), pack(w), impl=impl))
    np.testing.assert_array_equal(got, _oracle(x, w))


def test_scale_travels_with_the_data_and_dequantizes():
    """`codes / s_w` is the weight: dequantized output = acc / (s_x * s_w), the BitLinear rule."""
    rng = np.random.default_rng(5)
    w_float = rng.normal(size=(6, 40)).astype(np.float32)
    s_w = 1.0 / np.mean(np.abs(w_float))
    codes = np.clip(np.round(w_float * s_w), -1, 1).astype(np.int8)
    p = pack(codes, scale=s_w)
    assert isinstance(p, PackedTernary) and np.isclose(float(p.scale), s_w)
    x = rng.integers(-127, 128, (3, 40)).astype(np.int8)
    s_x = 127.0 / 3.0
    y = np.asarray(ternary_matmul(jnp.asarray(x), p)) / (s_x * float(p.scale))
    np.testing.assert_allclose(y, (x / s_x) @ (codes / s_w).T, rtol=1e-6, atol=1e-6)
    # the scale is a pytree leaf: a packed tensor passes through jit intact
    back = jax.jit(lambda q: q)(p)
    assert float(back.scale) == float(p.scale)


def test_pallas_blocks_smaller_than_the_problem():
    x, w = _case(9, 40, 300, 70)
    got = pallas.ternary_matmul(jnp.asarray(x), pack(w), block_m=8, block_n=32, block_k4=32)
    np.testing.assert_array_equal(np.asarray(got), _oracle(x, w))


@pytest.mark.parametrize("m", [1, 64])
def test_integer_only_never_traces_a_float_op(m):
    x, w = _case(1, m, 128, 16)
    p = pack(w)  # no float scale carried
    for impl in IMPLS:
        assert_integer_only(lambda a, d: ternary_matmul(a, d, impl=impl, integer_only=True), x, p)
    # without integer_only the CPU default may use the exact float32 GEMM for many rows
    with dispatch.force("xla_float", op="ternary_matmul"):
        if m > xla.DECODE_ROWS:
            with pytest.raises(AssertionError, match="floating-point"):
                assert_integer_only(lambda a, d: ternary_matmul(a, d), x, p)


def test_dispatch_default_force_and_env(monkeypatch):
    assert OP.choose() == OP.defaults.get(jax.default_backend(), OP.defaults["*"])
    with dispatch.force("pallas"):
        assert OP.choose() == "pallas"
        with dispatch.force("reference", op="ternary_matmul"):
            assert OP.choose() == "reference"
        assert OP.choose("xla") == "xla"  # an explicit impl= wins
    monkeypatch.setenv(dispatch.ENV_VAR, "ternary_matmul=xla")
    assert OP.choose() == "xla"
    monkeypatch.setenv(dispatch.ENV_VAR, "no_such_op=xla")
    with pytest.raises(NeurojaxError, match="no_such_op"):
        OP.choose()
    monkeypatch.delenv(dispatch.ENV_VAR)
    with pytest.raises(NeurojaxError, match="nonsense"):
        with dispatch.force("nonsense"):
            pass
    with pytest.raises(NeurojaxError, match="unknown ternary_matmul impl"):
        ternary_matmul(jnp.zeros((1, 4), jnp.int8), pack(np.zeros((2, 4), np.int8)), impl="nonsense")


def test_forced_impl_is_the_one_called(monkeypatch):
    calls = []
    monkeypatch.setitem(IMPLEMENTATIONS, "reference",
                        lambda x, p: calls.append("reference") or jnp.zeros((x.shape[0], p.data.shape[1]), jnp.int32))
    with dispatch.force("reference", op="ternary_matmul"):
        ternary_matmul(jnp.zeros((1, 4), jnp.int8), pack(np.zeros((2, 4), np.int8)))
    assert calls == ["reference"]


def test_bad_inputs_raise_clear_errors():
    p = pack(np.zeros((3, 10), np.int8))
    with pytest.raises(NeurojaxError, match="K=300"):
        ternary_matmul(jnp.zeros((1, 300), jnp.int8), p)
    with pytest.raises(NeurojaxError, match="integer activations"):
        ternary_matmul(jnp.zeros((1, 10), jnp.float32), p)
    with pytest.raises(NeurojaxError, match="PackedTernary"):
        ternary_matmul(jnp.zeros((1, 10), jnp.int8), np.zeros((32, 3), np.uint8))
