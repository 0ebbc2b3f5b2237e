import jax
import numpy as np
import pytest

from neurojax.fixedpoint import IntQuantConfig, calibrate, convert
from neurojax.nn import MatMulFreeLM, init_params, preset


@pytest.fixture(scope="module")
def micro_float():
    model = MatMulFreeLM(preset("micro"))
    return model, init_params(model, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def calib_tokens():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (4, 32)).astype(np.int32) for _ in range(3)]


@pytest.fixture(scope="module")
def micro_int(micro_float, calib_tokens):
    model, params = micro_float
    qcfg = IntQuantConfig()
    return convert(model.config, params, calibrate(model, params, calib_tokens, qcfg), qcfg)
