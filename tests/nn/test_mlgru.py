"""MLGRU token mixer and forget-gate lower bounds against an independent NumPy float64 model."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurojax.nn import MLGRU, ModelConfig, lower_bounds

D = 16
CFG = ModelConfig(vocab_size=11, d_model=D, num_layers=3)
BITLINEAR_EPS = 1e-6


# ---------------------------------------------------------------- NumPy float64 oracle (from the spec)
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _silu(x):
    return x * _sigmoid(x)


def _rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * w


def _round_half_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _bitlinear(x, p):
    """y = rms(x; norm, 1e-6); int8 absmax (half away) x ternary absmean (half even)."""
    w = np.asarray(p["weight"], np.float64)
    y = _rms(x, np.asarray(p["norm"]["weight"], np.float64), BITLINEAR_EPS)
    s_x = 127.0 / np.maximum(np.abs(y).max(-1, keepdims=True), 1e-5)
    y_q = np.clip(_round_half_away(y * s_x), -128, 127) / s_x
    s_w = 1.0 / max(np.abs(w).mean(), 1e-5)
    w_q = np.clip(np.round(w * s_w), -1, 1) / s_w
    return y_q @ w_q.T


def mlgru_oracle(params, x, h0, mask=None, lb=None, layer_index=0, eps=CFG.rms_norm_eps):
    x = np.asarray(x, np.float64)
    i = _bitlinear(x, params["i_proj"])
    f = _sigmoid(_bitlinear(x, params["f_proj"]))
    if layer_index > 0 and lb is not None:
        f = lb + (1.0 - lb) * f
    c = _silu(i) * (1.0 - f)
    if mask is not None:
        c = c * np.asarray(mask, np.float64)[..., None]
    h = np.asarray(h0, np.float64).copy()
    hs = np.zeros_like(c)
    for t in range(x.shape[1]):
        h = f[:, t] * h + c[:, t]
        hs[:, t] = h
    g = _rms(_bitlinear(x, params["g_proj"]), np.asarray(params["g_norm"]["weight"], np.float64), eps)
    return _bitlinear(g * _silu(hs), params["o_proj"]), h


# ---------------------------------------------------------------- helpers
def _params(seed, cfg=CFG, layer_index=1):
    rng = np.random.default_rng(seed)
    x = jnp.zeros((1, 2, cfg.d_model))
    params = jax.jit(MLGRU(cfg, layer_index).init)(jax.random.PRNGKey(seed), x, MLGRU.initial_state(cfg, 1))["params"]
    # Randomise every norm weight so that each projection's own norm (and g_norm) matters,
    # and scale the projection weights so the gates are far from trivial.
    out = {}
    for name, sub in params.items():
        if name == "g_norm":
            out[name] = {"weight": jnp.asarray(rng.uniform(0.5, 1.5, cfg.d_model).astype(np.float32))}
        else:
            out[name] = {"weight": jnp.asarray(rng.normal(size=sub["weight"].shape).astype(np.float32)),
                         "norm": {"weight": jnp.asarray(rng.uniform(0.5, 1.5, cfg.d_model).astype(np.float32))}}
    return out


def _run(params, x, h0, mask=None, lb=None, layer_index=1, cfg=CFG):
    fn = jax.jit(lambda p, x, h, m, b: MLGRU(cfg, layer_index).apply({"params": p}, x, h, m, b))
    y, h = fn(params, jnp.asarray(x), jnp.asarray(h0), None if mask is None else jnp.asarray(mask),
              None if lb is None else jnp.asarray(lb))
    return np.asarray(y), np.asarray(h)


def _close(actual, desired, what=""):
    desired = np.asarray(desired)
    np.testing.assert_allclose(actual, desired, rtol=1e-4, atol=1e-4 * np.abs(desired).max(), err_msg=what)


def _inputs(seed, b=2, t=6):
    rng = np.random.default_rng(100 + seed)
    x = rng.normal(size=(b, t, D)).astype(np.float32)
    h0 = rng.normal(size=(b, D)).astype(np.float32)
    lb = rng.uniform(0.1, 0.9, size=D).astype(np.float32)
    return x, h0, lb


# ---------------------------------------------------------------- lower bounds
def test_lower_bounds_formula():
    raw = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32) * 2
    lb = np.asarray(lower_bounds(jnp.asarray(raw)))
    r = raw.astype(np.float64)
    p = np.exp(r - r.max(0)) / np.exp(r - r.max(0)).sum(0)
    want = np.cumsum(p, axis=0) - p[0]
    np.testing.assert_allclose(lb, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(lb[0], np.zeros(7))
    assert np.all(np.diff(lb, axis=0) >= 0) and np.all(lb < 1)
    # softmax over layers (axis 0), not over channels: the last row is 1 - P[0]
    np.testing.assert_allclose(lb[-1], 1 - p[0], rtol=1e-5)


def test_lower_bounds_at_zero_init_are_l_over_L():
    lb = np.asarray(lower_bounds(jnp.zeros((4, 3))))
    np.testing.assert_allclose(lb, np.repeat(np.arange(4)[:, None] / 4, 3, axis=1), atol=1e-7)


# ---------------------------------------------------------------- forward vs oracle
def test_param_tree():
    params = jax.eval_shape(MLGRU(CFG, 0).init, jax.random.PRNGKey(0), jnp.zeros((1, 2, D)),
                            MLGRU.initial_state(CFG, 1))["params"]
    assert set(params) == {"i_proj", "f_proj", "g_proj", "o_proj", "g_norm"}
    for name in ("i_proj", "f_proj", "g_proj", "o_proj"):
        assert params[name]["weight"].shape == (D, D)
        assert params[name]["norm"]["weight"].shape == (D,)
    assert params["g_norm"]["weight"].shape == (D,)
    assert MLGRU.initial_state(CFG, 3).shape == (3, D)


@pytest.mark.parametrize("seed", [0, 1])
def test_forward_layer_with_lower_bound_matches_oracle(seed):
    params = _params(seed)
    x, h0, lb = _inputs(seed)
    y, h = _run(params, x, h0, lb=lb, layer_index=1)
    y_ref, h_ref = mlgru_oracle(params, x, h0, lb=lb, layer_index=1)
    _close(y, y_ref, "output")
    _close(h, h_ref, "final state")
    # the bound matters: without it the oracle gives something else
    y_nolb, _ = mlgru_oracle(params, x, h0, lb=None, layer_index=1)
    assert not np.allclose(y_ref, y_nolb, rtol=1e-3)


def test_layer_zero_ignores_lower_bound():
    params = _params(2, layer_index=0)
    x, h0, lb = _inputs(2)
    y, h = _run(params, x, h0, lb=lb, layer_index=0)
    y_ref, h_ref = mlgru_oracle(params, x, h0, lb=None, layer_index=0)
    _close(y, y_ref)
    _close(h, h_ref)
    y2, _ = _run(params, x, h0, lb=None, layer_index=0)
    np.testing.assert_array_equal(y, y2)


def test_no_lower_bound_passed():
    params = _params(3)
    x, h0, _ = _inputs(3)
    y, h = _run(params, x, h0, lb=None, layer_index=2)
    y_ref, h_ref = mlgru_oracle(params, x, h0, lb=None, layer_index=2)
    _close(y, y_ref)
    _close(h, h_ref)


def test_mask_multiplies_only_the_candidate():
    params = _params(4)
    x, h0, lb = _inputs(4, b=3, t=7)
    mask = np.array([[1, 1, 1, 1, 1, 0, 0],    # right padding
                     [0, 0, 1, 1, 1, 1, 1],    # left padding
                     [1, 0, 1, 0, 1, 1, 0]], np.float32)
    y, h = _run(params, x, h0, mask=mask, lb=lb)
    y_ref, h_ref = mlgru_oracle(params, x, h0, mask=mask, lb=lb, layer_index=1)
    _close(y, y_ref, "output")
    _close(h, h_ref, "final state")
    # padded positions still produce outputs
    assert np.all(np.abs(y[0, 5:]).max(-1) > 0)
    # f is not masked: across right padding the state keeps decaying by f (h_T != h at t=4),
    # i.e. h_T = h_4 * f_5 * f_6, which the oracle computes; masking f as well would freeze it.
    y_full, _ = mlgru_oracle(params, x[:1, :5], h0[:1], lb=lb, layer_index=1)
    _close(y[:1, :5], y_full, "real positions of the right-padded row")
    _, h5 = mlgru_oracle(params, x[:1, :5], h0[:1], lb=lb, layer_index=1)
    assert not np.allclose(h[0], h5[0], rtol=1e-3)
    f = _sigmoid(_bitlinear(np.asarray(x[:1, 5:], np.float64), params["f_proj"]))
    f = lb + (1 - lb) * f
    _close(h[:1], h5 * f[:, 0] * f[:, 1], "decay across padding")


def test_left_padding_from_zero_state_equals_unpadded():
    params = _params(5)
    x, _, lb = _inputs(5, b=1, t=6)
    mask = np.array([[0, 0, 1, 1, 1, 1]], np.float32)
    zero = np.zeros((1, D), np.float32)
    y, h = _run(params, x, zero, mask=mask, lb=lb)
    y_real, h_real = _run(params, x[:, 2:], zero, lb=lb)
    np.testing.assert_allclose(y[:, 2:], y_real, rtol=0, atol=1e-6)
    np.testing.assert_allclose(h, h_real, rtol=0, atol=1e-6)


def test_num_heads_only_reshapes_state():
    params = _params(6)
    x, h0, lb = _inputs(6)
    cfg4 = CFG.replace(num_heads=4)
    y1, h1 = _run(params, x, h0, lb=lb)
    y4, h4 = _run(params, x, h0, lb=lb, cfg=cfg4)
    np.testing.assert_allclose(y4, y1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(h4, h1, rtol=0, atol=1e-6)


def test_full_precision_matches_float_oracle():
    params = _params(7)
    x, h0, lb = _inputs(7)
    cfg = CFG.replace(full_precision=True)
    y, h = _run(params, x, h0, lb=lb, cfg=cfg)

    def lin(v, p):
        return _rms(v, np.asarray(p["norm"]["weight"], np.float64), BITLINEAR_EPS) @ np.asarray(p["weight"], np.float64).T

    x64 = x.astype(np.float64)
    f = lb + (1 - lb) * _sigmoid(lin(x64, params["f_proj"]))
    c = _silu(lin(x64, params["i_proj"])) * (1 - f)
    hh = h0.astype(np.float64)
    hs = []
    for t in range(x.shape[1]):
        hh = f[:, t] * hh + c[:, t]
        hs.append(hh)
    hs = np.stack(hs, 1)
    g = _rms(lin(x64, params["g_proj"]), np.asarray(params["g_norm"]["weight"], np.float64), CFG.rms_norm_eps)
    _close(y, lin(g * _silu(hs), params["o_proj"]))
    _close(h, hh)
