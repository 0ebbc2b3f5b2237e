"""Named rounding modes: hand-computed values on exact ties and non-ties."""
import jax.numpy as jnp
import numpy as np
import pytest

from neurojax.quant import ROUNDING_MODES, round_half_away, round_half_even, round_with

TIES = np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5], np.float32)
TIES_HALF_EVEN = np.array([0.0, 0.0, 2.0, -2.0, 2.0, -2.0], np.float32)
TIES_HALF_AWAY = np.array([1.0, -1.0, 2.0, -2.0, 3.0, -3.0], np.float32)

NON_TIES = np.array([0.0, 0.25, -0.25, 0.75, -0.75, 1.49, -1.49, 1.51, -2.51, 2.49, 126.6, -127.4], np.float32)
NON_TIES_ROUNDED = np.array([0, 0, 0, 1, -1, 1, -1, 2, -3, 2, 127, -127], np.float32)

# Largest float32 below 0.5: its nearest integer is 0 (it is not a tie), but
# `0.49999997 + 0.5` rounds up to 1.0 in float32.
BELOW_HALF = np.nextafter(np.float32(0.5), np.float32(0.0))


def test_half_even_on_ties():
    np.testing.assert_array_equal(np.asarray(round_half_even(jnp.asarray(TIES))), TIES_HALF_EVEN)


def test_half_away_on_ties():
    np.testing.assert_array_equal(np.asarray(round_half_away(jnp.asarray(TIES))), TIES_HALF_AWAY)


def test_the_two_modes_differ_exactly_on_even_ties():
    even = np.asarray(round_half_even(jnp.asarray(TIES)))
    away = np.asarray(round_half_away(jnp.asarray(TIES)))
    # 0.5, -0.5, 2.5, -2.5 differ; 1.5 and -1.5 agree (2 is both even and away from zero).
    np.testing.assert_array_equal(even != away, [True, True, False, False, True, True])


@pytest.mark.parametrize("fn", [round_half_even, round_half_away], ids=["half_even", "half_away"])
def test_non_ties_round_to_nearest(fn):
    np.testing.assert_array_equal(np.asarray(fn(jnp.asarray(NON_TIES))), NON_TIES_ROUNDED)


@pytest.mark.parametrize("fn", [round_half_even, round_half_away], ids=["half_even", "half_away"])
def test_integers_are_fixed_points_in_int8_range(fn):
    ints = np.arange(-128, 128, dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(fn(jnp.asarray(ints))), ints)


@pytest.mark.parametrize("fn", [
    round_half_even,
    round_half_away,
], ids=["half_even", "half_away"])
def test_just_below_one_half_rounds_to_zero(fn):
    # A non-tie whose nearest integer is 0: every round-to-nearest mode must give 0.
    x = np.array([BELOW_HALF, -BELOW_HALF], np.float32)
    np.testing.assert_array_equal(np.abs(np.asarray(fn(jnp.asarray(x)))), [0.0, 0.0])


def test_half_away_keeps_large_odd_integers():
    x = np.array([8388609.0, -8388609.0, 16777215.0], np.float32)
    np.testing.assert_array_equal(np.asarray(round_half_away(jnp.asarray(x))), x)


def test_round_with_names():
    x = jnp.asarray(np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.7, 1.7], np.float32))
    expected = {
        "half_even": [-2, -2, 0, 0, 2, 2, -2, 2],
        "half_away": [-3, -2, -1, 1, 2, 3, -2, 2],
        "floor": [-3, -2, -1, 0, 1, 2, -2, 1],
        "toward_zero": [-2, -1, 0, 0, 1, 2, -1, 1],
    }
    assert set(ROUNDING_MODES) == set(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(np.asarray(round_with(name, x)), np.array(want, np.float32), err_msg=name)


def test_round_with_unknown_name_raises_and_lists_known_modes():
    with pytest.raises(ValueError) as info:
        round_with("half_up", jnp.zeros(3))
    msg = str(info.value)
    assert "half_up" in msg
    for name in ("half_even", "half_away"):
        assert name in msg
