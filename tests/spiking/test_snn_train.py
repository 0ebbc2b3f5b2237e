"""The spiking MLP of the training benchmark: the issue's step-0 losses against an independent
float64 NumPy oracle, every fast path against the plain reference (spikes bit-identical on
exact data, gradients to float32 round-off), training, the module API and bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurojax.errors import NeurojaxError
from neurojax.spiking import snn

FAST = [i for i in snn.IMPLS if i != "reference"]


# ----------------------------------------------------------------------------- float64 oracle

def oracle_loss(x, labels, w1, w2, order, beta=0.9, th=1.0):
    """The workload in float64, written from the libraries' equations:
    snnTorch Leaky: reset = H(mem_prev - th) (detached); mem = beta mem_prev + I - reset th;
                    spk = H(mem - th)
    Spyx LIF:       spk = H(V_prev - th); V = beta V_prev + I - spk th (output spk)."""
    def lif(cur):
        mem = np.zeros(cur.shape[1:])
        spikes = np.zeros_like(cur)
        for t in range(cur.shape[0]):
            prev_spike = (mem - th > 0).astype(np.float64)
            mem = beta * mem + cur[t] - prev_spike * th
            spikes[t] = (mem - th > 0) if order == "snntorch" else prev_spike
        return spikes

    counts = lif(lif(x @ w1.T) @ w2.T).sum(0)
    z = counts - counts.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -np.mean(logp[np.arange(len(labels)), labels])


def issue_workload(steps=100, batch=64, hidden=256):
    """Reproduced from the issue's text (not from the library's helpers)."""
    x = (np.random.default_rng(0).random((steps, batch, 700)) < 0.05).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 20, size=batch)
    rng = np.random.default_rng(2)
    w1 = (rng.uniform(-1, 1, (hidden, 700)) * 4 / np.sqrt(700)).astype(np.float32)
    w2 = (rng.uniform(-1, 1, (20, hidden)) * 3 / np.sqrt(hidden)).astype(np.float32)
    return x, labels, w1, w2


@pytest.fixture(scope="module")
def workload():
    return issue_workload()


def test_helpers_reproduce_the_issue_workload(workload):
    x, labels, w1, w2 = workload
    x2, labels2 = snn.workload_inputs(100, 64)
    params = snn.workload_params()
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(labels2, labels)
    np.testing.assert_array_equal(np.asarray(params["fc1"]["weight"]), w1)
    np.testing.assert_array_equal(np.asarray(params["fc2"]["weight"]), w2)
    assert x.dtype == np.float32 and abs(x.mean() - 0.05) < 0.001


@pytest.mark.parametrize("order, want", [("snntorch", 17.43354), ("spyx", 17.01272)])
def test_step0_loss_matches_float64_reference(workload, order, want):
    """The issue's figures: step-0 loss 17.43354 (snnTorch order), 17.01272 (Spyx order); the
    oracle, the library's float64 loss and the float32 network (reference and the fastest path)
    agree to 1e-5."""
    x, labels, w1, w2 = workload
    ref = oracle_loss(x.astype(np.float64), labels, w1.astype(np.float64), w2.astype(np.float64), order)
    assert abs(ref - want) < 1e-5, ref
    cfg = snn.SNNConfig(order=order, detach_reset=order != "spyx")
    params = {"fc1": {"weight": jnp.asarray(w1)}, "fc2": {"weight": jnp.asarray(w2)}}
    assert abs(snn.loss_float64(params, x, labels, cfg) - ref) < 1e-9
    for impl in ("chunked",) if order == "spyx" else ("reference", "chunked"):
        got = float(jax.jit(lambda p, x_, y_, impl=impl: snn.loss(p, x_, y_, cfg, impl))(params, x, labels))
        assert abs(got - ref) < 1e-5, (impl, got, ref)


# ----------------------------------------------------------------------------- fast paths vs the reference

def dyadic_problem(steps, batch=3, n_in=11, hidden=7, n_out=5, seed=0):
    """Weights on a 1/64 grid and 0/1 inputs: every matmul is exact in float32 whatever the
    summation order, so all implementations must produce the same spikes bit for bit."""
    rng = np.random.default_rng(seed)
    x = (rng.random((steps, batch, n_in)) < 0.3).astype(np.float32)
    labels = rng.integers(0, n_out, size=batch)
    w1 = rng.integers(-24, 64, (hidden, n_in)) / 64.0
    w2 = rng.integers(-16, 64, (n_out, hidden)) / 64.0
    params = {"fc1": {"weight": jnp.asarray(w1, jnp.float32)}, "fc2": {"weight": jnp.asarray(w2, jnp.float32)}}
    return params, jnp.asarray(x), jnp.asarray(labels)


def _close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.abs(b).max()), 1e-6)
    err = np.abs(a - b)
    assert err.max() <= 2e-5 * scale + 1e-7, f"{what}: max err {err.max():.3g}, mean {err.mean():.3g}, scale {scale:.3g}"


COMBOS = [("snntorch", "subtract", True), ("spyx", "subtract", False), ("neurojax", "zero", False),
          ("snntorch", "zero", True), ("spyx", "zero", True), ("neurojax", "subtract", True)]


def _jitted(cfg, impl):
    fwd = jax.jit(lambda p, x: snn.forward(p, x, cfg, impl))
    grad = jax.jit(jax.grad(lambda p, x, y: snn.loss(p, x, y, cfg, impl)))
    return fwd, grad


@pytest.mark.parametrize("order, reset, detach, steps", [c + (23,) for c in COMBOS] + [("spyx", "subtract", True, 5)])
def test_fast_paths_equal_reference(order, reset, detach, steps):
    """Each implementation against the reference: output spikes identical, loss identical, and
    the gradients of W1 and W2 equal to float32 round-off (T = 23 is not a multiple of the
    chunk: the chunked path pads and must still agree)."""
    cfg = snn.SNNConfig(n_in=11, hidden=7, n_out=5, beta=0.8, threshold=1.0, slope=5.0, order=order, reset=reset,
                        detach_reset=detach)
    params, x, labels = dyadic_problem(steps)
    fwd, grad = _jitted(cfg, "reference")
    ref_s, ref_g = fwd(params, x), grad(params, x, labels)
    assert 0 < float(ref_s.mean()) < 0.9
    assert float(jnp.abs(ref_g["fc1"]["weight"]).max()) > 0
    for impl in FAST:
        fwd, grad = _jitted(cfg, impl)
        np.testing.assert_array_equal(np.asarray(fwd(params, x)), np.asarray(ref_s), err_msg=impl)
        g = grad(params, x, labels)
        for layer in ("fc1", "fc2"):
            _close(g[layer]["weight"], ref_g[layer]["weight"], f"{impl} {layer} {order} {reset} detach={detach}")


@pytest.mark.parametrize("order, reset, detach", COMBOS)
def test_fused_layer_vjp_equals_autodiff(order, reset, detach):
    """`lif_sequence` alone: the hand-written reverse scan against autodiff through the LIF
    module, for a random cotangent of the spikes (every update order, reset and detach)."""
    cfg = snn.SNNConfig(beta=0.85, slope=3.0, order=order, reset=reset, detach_reset=detach)
    rng = np.random.default_rng(7)
    cur = jnp.asarray(rng.integers(-16, 48, (17, 4, 6)) / 32.0, jnp.float32)
    weight = jnp.asarray(rng.standard_normal((17, 4, 6)), jnp.float32)
    s_ref = snn.lif_sequence(cur, cfg, "reference")
    np.testing.assert_array_equal(np.asarray(snn.lif_sequence(cur, cfg, "fused")), np.asarray(s_ref))
    grads = {impl: jax.grad(lambda c, impl=impl: jnp.sum(snn.lif_sequence(c, cfg, impl) * weight))(cur)
             for impl in ("reference", "fused")}
    _close(grads["fused"], grads["reference"], f"lif_sequence {order} {reset} {detach}")
    assert float(jnp.abs(grads["reference"]).max()) > 0


def test_chunk_plan():
    """Chunks of CHUNK_STEPS = 5 steps, a divisor of T in [3, 5] when there is one, else padding."""
    assert snn.CHUNK_STEPS == 5
    assert snn._chunks(100) == (20, 5) and snn._chunks(50) == (10, 5) and snn._chunks(200) == (40, 5)
    assert snn._chunks(5) == (1, 5) and snn._chunks(24) == (6, 4) and snn._chunks(23) == (5, 5)
    assert snn._chunks(97) == (20, 5) and snn._chunks(1) == (1, 1) and snn._chunks(9) == (3, 3)
    assert snn._chunks(24, target=10) == (3, 8) and snn._chunks(23, target=10) == (3, 10)


# ----------------------------------------------------------------------------- training and the module

def test_training_steps_agree_and_lower_the_loss():
    """Eight Adam steps (lr 0.01) from the same start: the loss falls, and the fast paths follow
    the reference's trajectory (loss and weights)."""
    cfg = snn.SNNConfig(n_in=11, hidden=7, n_out=5, beta=0.8, slope=5.0, order="snntorch")
    params0, x, labels = dyadic_problem(12, batch=6, seed=1)
    finals = {}
    for impl in ("reference", "chunked", "fused"):
        opt, step = snn.make_train_step(cfg, impl, learning_rate=0.01, donate=impl != "fused")
        params = params0 if impl == "fused" else jax.tree.map(jnp.copy, params0)  # a donated start is consumed
        state, losses = opt.init(params), []
        for _ in range(8):
            params, state, value = step(params, state, x, labels)
            losses.append(float(value))
        assert losses[-1] < losses[0], (impl, losses)
        finals[impl] = (losses, params)
    for impl in ("chunked", "fused"):
        np.testing.assert_allclose(finals[impl][0], finals["reference"][0], rtol=1e-4)
        for layer in ("fc1", "fc2"):
            _close(finals[impl][1][layer]["weight"], finals["reference"][1][layer]["weight"], f"{impl} {layer}")


def test_module_api_matches_the_functions():
    cfg = snn.SNNConfig(n_in=11, hidden=7, n_out=5, order="spyx", detach_reset=False)
    _, x, _ = dyadic_problem(9)
    outs = {}
    for impl in snn.IMPLS:
        model = snn.SpikingMLP(cfg, impl)
        variables = model.init(jax.random.PRNGKey(0), x)
        assert variables["params"]["fc1"]["weight"].shape == (7, 11)
        assert variables["params"]["fc2"]["weight"].shape == (5, 7)
        outs[impl] = np.asarray(model.apply(variables, x))
        np.testing.assert_array_equal(outs[impl], np.asarray(snn.forward(variables["params"], x, cfg, impl)))
    for impl in FAST:
        np.testing.assert_array_equal(outs[impl], outs["reference"])
    assert outs["reference"].shape == (9, 3, 5)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("make_x, match", [
    (lambda: jnp.ones((4, 700)), "rank 3"),
    (lambda: jnp.ones((4, 2, 700), jnp.int32), "float array"),
    (lambda: jnp.ones((4, 2, 700), bool), "float array"),
    (lambda: jnp.ones((0, 2, 700)), "T >= 1"),
    (lambda: jnp.ones((4, 2, 699)), "n_in=700"),
])
def test_bad_input_raises_one_clear_error(make_x, match):
    cfg = snn.SNNConfig(hidden=8)
    params = snn.workload_params(cfg)
    labels = jnp.zeros((2,), jnp.int32)
    for impl in snn.IMPLS:
        with pytest.raises(NeurojaxError, match=match) as info:
            snn.loss(params, make_x(), labels, cfg, impl)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("make, match", [
    (lambda: snn.SNNConfig(threshold=0.0), "threshold must be a finite number > 0"),
    (lambda: snn.SNNConfig(threshold=-1.0), "threshold"),
    (lambda: snn.SNNConfig(beta=1.5), "decay_v"),
    (lambda: snn.SNNConfig(order="brian"), "order"),
    (lambda: snn.SNNConfig(hidden=0), "hidden must be a positive int"),
    (lambda: snn.make_train_step(snn.SNNConfig(), "pallas"), "unknown spiking MLP impl"),
    (lambda: snn.loss(snn.workload_params(), jnp.ones((3, 2, 700)), jnp.zeros((3,), jnp.int32)), "labels"),
    (lambda: snn.forward(snn.workload_params(snn.SNNConfig(hidden=8)), jnp.ones((3, 2, 700))), "do not match"),
    (lambda: snn.lif_sequence(jnp.ones((0, 3))), "T >= 1"),
    (lambda: snn.workload_inputs(0, 4), "steps must be a positive int"),
])
def test_bad_configuration_raises(make, match):
    with pytest.raises(NeurojaxError, match=match):
        make()
