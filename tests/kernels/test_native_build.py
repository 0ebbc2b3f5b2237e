"""The shared build of the C++ FFI kernels: cached per source and flags, atomic, clear errors."""
import pytest

from neurojax.errors import NeurojaxError
from neurojax.kernels import native_build
from neurojax.kernels.ternary_matmul import native as ternary_native

PORTABLE = ("-DNEUROJAX_PORTABLE",)


def test_build_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv(native_build.CACHE_VAR, str(tmp_path))
    first = native_build.build(ternary_native.SOURCE, "t", PORTABLE)
    assert first.parent == tmp_path and first.exists()
    stamp = first.stat().st_mtime_ns
    assert native_build.build(ternary_native.SOURCE, "t", PORTABLE) == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary file left behind


def test_missing_compiler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(native_build.CACHE_VAR, str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(NeurojaxError, match="no C\\+\\+ compiler"):
        native_build.build(ternary_native.SOURCE, "t", PORTABLE)
    assert list(tmp_path.iterdir()) == []


def test_compile_error_names_the_source_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(native_build.CACHE_VAR, str(tmp_path / "cache"))
    bad = tmp_path / "broken.cc"
    bad.write_text("this is not C++\n")
    with pytest.raises(NeurojaxError, match="broken.cc failed"):
        native_build.build(bad, "broken")
    assert list((tmp_path / "cache").iterdir()) == []


def test_disable_switch(monkeypatch):
    monkeypatch.setenv(native_build.DISABLE_VAR, "0")
    assert "NEUROJAX_NATIVE=0" in native_build.disabled_reason()
    monkeypatch.setenv(native_build.DISABLE_VAR, "1")
    assert native_build.disabled_reason() is None
