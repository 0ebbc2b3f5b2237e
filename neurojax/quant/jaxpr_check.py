"""Inspect a jaxpr for floating-point values: the check behind "integer paths contain no float"."""
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.extend import core as jcore


def _sub_jaxprs(params: dict):
    for value in params.values():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(v, jcore.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, jcore.Jaxpr):
                yield v


def float_values(jaxpr: Any) -> list[str]:
    """Descriptions of every float-typed variable, literal or constant in `jaxpr` and its sub-jaxprs."""
    found = []
    closed_consts = getattr(jaxpr, "consts", ())
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    for c in closed_consts:
        if jnp.issubdtype(getattr(c, "dtype", jnp.int32), jnp.floating):
            found.append(f"constant of dtype {c.dtype}")
    stack = [jaxpr]
    while stack:
        j = stack.pop()
        for var in list(j.invars) + list(j.constvars) + list(j.outvars):
            aval = getattr(var, "aval", None)
            if aval is not None and jnp.issubdtype(aval.dtype, jnp.floating):
                found.append(f"input/output {var} : {aval}")
        for eqn in j.eqns:
            for var in list(eqn.invars) + list(eqn.outvars):
                aval = getattr(var, "aval", None)
                if aval is not None and jnp.issubdtype(aval.dtype, jnp.floating):
                    found.append(f"{eqn.primitive.name}: {var} : {aval}")
            stack.extend(_sub_jaxprs(eqn.params))
    return found


def assert_integer_only(fn: Callable, *args, **kwargs) -> None:
    """Raise AssertionError naming the float ops if `fn(*args)` traces any floating-point value."""
    found = float_values(jax.make_jaxpr(fn, **kwargs)(*args))
    if found:
        raise AssertionError(f"{len(found)} floating-point value(s) in an integer path, e.g. {found[:5]}")
