"""Meshes and sharding rules: one device in-process; 8 forced host devices in subprocesses
(`XLA_FLAGS=--xla_force_host_platform_device_count=8` must be set before JAX starts)."""
import json
import os
import subprocess
import sys

import jax
import pytest
from jax.sharding import PartitionSpec as P

from neurojax.errors import NeurojaxError
from neurojax.nn.config import preset
from neurojax.nn.params import abstract_params
from neurojax.train import run_config
from neurojax.train.sharding import mesh_shape, param_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EIGHT = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
ONE = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}


def _python(args, env, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _probe(request: dict, env=EIGHT) -> dict:
    r = _python(["-m", "neurojax.train.mesh_probe", json.dumps(request)], env)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_mesh_shape_resolves_and_rejects():
    assert mesh_shape({"data": -1, "fsdp": 1, "tensor": 1}, 8) == (8, 1, 1)
    assert mesh_shape({"data": 2, "fsdp": -1, "tensor": 2}, 8) == (2, 2, 2)
    with pytest.raises(NeurojaxError, match="needs 6 devices, but 8"):
        mesh_shape({"data": 3, "fsdp": 2, "tensor": 1}, 8)
    with pytest.raises(NeurojaxError, match="do not divide the 8 devices"):
        mesh_shape({"data": -1, "fsdp": 3, "tensor": 1}, 8)
    with pytest.raises(NeurojaxError, match="at most one"):
        mesh_shape({"data": -1, "fsdp": -1, "tensor": 1}, 8)
    with pytest.raises(NeurojaxError, match="mesh.pipeline is not a mesh axis"):
        mesh_shape({"pipeline": 2}, 8)
    with pytest.raises(NeurojaxError, match="mesh.tensor must be"):
        mesh_shape({"tensor": 0}, 8)


def test_param_specs_follow_the_rules():
    params = abstract_params(preset("micro"))
    specs = {jax.tree_util.keystr(p): param_spec([str(k.key) for k in p], leaf.shape)
             for p, leaf in jax.tree_util.tree_leaves_with_path(params)}
    assert specs["['embeddings']['embedding']"] == P("tensor", "fsdp")
    for proj in ("i_proj", "f_proj", "g_proj"):
        assert specs[f"['layers_0']['attn']['{proj}']['weight']"] == P("tensor", "fsdp")
    assert specs["['layers_1']['mlp']['gate_proj']['weight']"] == P("tensor", "fsdp")
    assert specs["['layers_0']['attn']['o_proj']['weight']"] == P("fsdp", "tensor")
    assert specs["['layers_0']['mlp']['down_proj']['weight']"] == P("fsdp", "tensor")
    assert all(s == P() for k, s in specs.items() if "norm" in k or "lower_bounds" in k)


def test_recurrence_needs_no_communication_sharded():
    """The MLGRU scan (forward and its VJP) compiled with features split over 8 devices, or the
    batch split, holds no collective; a sum over the split features (the control) does."""
    out = _probe({"probe": "recurrence", "batch": 8, "steps": 16, "features": 64})
    assert sum(out["features"].values()) == 0 and sum(out["batch"].values()) == 0
    assert out["control"]["all-reduce"] >= 1


def test_fsdp_memory_per_device():
    cfg = run_config("micro")
    cfg.model.vocab_size = 264
    one = _probe({"probe": "memory", "config": cfg.to_dict(), "mesh": {"data": 1, "fsdp": 1, "tensor": 1}}, ONE)
    eight = _probe({"probe": "memory", "config": cfg.to_dict(), "mesh": {"data": 1, "fsdp": 8, "tensor": 1}})
    assert eight["total_bytes"] == one["total_bytes"]
    assert eight["per_device_bytes"] <= one["per_device_bytes"] / 6


def _train(workdir, env, *overrides):
    args = ["-m", "experiments.train", f"--workdir={workdir}", "--config=experiments/configs/lm.py:micro",
            "--config.train.num_steps=20", "--config.model.vocab_size=264", "--config.train.log_every=1",
            *overrides]
    return _python(args, env)


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r["loss"] for r in map(json.loads, f) if "loss" in r]


def test_bad_meshes_are_one_error_line(tmp_path):
    r = _train(tmp_path / "a", ONE, "--config.mesh.data=2")
    assert r.returncode == 2 and "needs 2 devices, but 1" in r.stderr
    r = _python(["-m", "experiments.train", f"--workdir={tmp_path / 'b'}", "--config=experiments/configs/lm.py:micro",
                 "--config.mesh.data=1", "--config.mesh.tensor=2", "--config.mesh.fsdp=4"], EIGHT)
    assert r.returncode == 2
    assert "embeddings/embedding: dimension 0 (size 259) is not divisible by mesh axis 'tensor'" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing written


@pytest.mark.slow
def test_eight_devices_follow_one_device(tmp_path):
    """(data=2, fsdp=2, tensor=2) on 8 devices vs 1 device, same global batch: the full-precision
    loss curve agrees to 1e-5 (relative) for 20 steps. The ternary model agrees to 1e-5 until a
    rounding boundary flips (reduction order differs across meshes), then stays within 1e-2."""
    mesh = ["--config.mesh.data=2", "--config.mesh.fsdp=2", "--config.mesh.tensor=2"]
    for extra, tol_all in ((["--config.model.full_precision=True"], 1e-5), ([], 1e-2)):
        a, b = tmp_path / f"one{len(extra)}", tmp_path / f"eight{len(extra)}"
        for wd, env, more in ((a, ONE, []), (b, EIGHT, mesh)):
            r = _train(wd, env, *extra, *more)
            assert r.returncode == 0, r.stderr[-2000:]
        la, lb = _losses(a), _losses(b)
        assert len(la) == len(lb) == 20
        rel = [abs(x - y) / abs(x) for x, y in zip(la, lb)]
        assert max(rel[:5]) < 1e-5 and max(rel) < tol_all, rel


@pytest.mark.slow
def test_checkpoint_moves_between_meshes(tmp_path):
    """A checkpoint written on a 2x4 (fsdp x tensor) mesh restores identically on 1 device and on a
    4x2 mesh, and the run resumes on the 4x2 mesh."""
    wd = str(tmp_path / "run")
    r = _train(wd, EIGHT, "--config.mesh.data=1", "--config.mesh.fsdp=2", "--config.mesh.tensor=4",
               "--stop_after_steps=10", "--config.model.full_precision=True")
    assert r.returncode == 0, r.stderr[-2000:]
    one = _probe({"probe": "restore", "workdir": wd, "mesh": {"data": 1, "fsdp": 1, "tensor": 1}}, ONE)
    other = _probe({"probe": "restore", "workdir": wd, "mesh": {"data": 1, "fsdp": 4, "tensor": 2}})
    assert one["step"] == other["step"] == 10 and other["devices"] == 8
    assert one["digest"] == other["digest"]
    assert "P('tensor', 'fsdp')" in other["specs"]
    r = _train(wd, EIGHT, "--config.mesh.data=1", "--config.mesh.fsdp=4", "--config.mesh.tensor=2",
               "--config.model.full_precision=True")
    assert r.returncode == 0 and "resumed" in r.stdout + r.stderr, r.stderr[-2000:]
    assert len(_losses(wd)) == 20


@pytest.mark.slow
def test_two_processes_train_like_one_process_with_two_devices(tmp_path):
    """jax.distributed on this machine: 2 processes x 1 CPU device (gloo) give the same losses as
    1 process with 2 devices; only the lead process writes config.json, metrics and the plot."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["--config=experiments/configs/lm.py:micro", "--config.train.num_steps=8", "--config.train.log_every=1",
              "--config.train.checkpoint_every=4", "--config.model.full_precision=True"]
    multi = str(tmp_path / "multi")
    procs = [subprocess.Popen([sys.executable, "-m", "experiments.train", f"--workdir={multi}", *common,
                               f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
                              cwd=REPO, env=ONE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    assert "done: step 8" in outs[0][0] and "done" not in outs[1][0]
    single = str(tmp_path / "single")
    r = _python(["-m", "experiments.train", f"--workdir={single}", *common],
                dict(ONE, XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert r.returncode == 0, r.stderr[-2000:]
    la, lb = _losses(multi), _losses(single)
    assert len(la) == 8 and max(abs(x - y) / abs(x) for x, y in zip(la, lb)) < 1e-6
    assert sorted(os.listdir(os.path.join(multi, "checkpoints"))) == ["4", "8"]


def test_collectives_are_parsed_from_hlo_text():
    from neurojax.train.mesh_probe import collective_bytes, count_collectives

    hlo = """
  %all-reduce.37 = (f32[259,32]{1,0}, f32[32]{0}, /*index=2*/bf16[4]{0}) all-reduce(%a, %b, %c), channel_id=1
  %ag = f32[8,16]{1,0} all-gather-start(%x), dimensions={0}
  %agd = f32[8,16]{1,0} all-gather-done(%ag)
  ROOT %t = (s32[2]{0}) tuple(%all-reduce.37)
  %add = f32[3]{0} add(%all-reduce.37, %p)
"""
    counts = count_collectives(hlo)
    assert counts["all-reduce"] == 1 and counts["all-gather"] == 1 and sum(counts.values()) == 2
    assert collective_bytes(hlo) == (259 * 32 + 32) * 4 + 4 * 2 + 8 * 16 * 4


def test_step_profile_on_one_device():
    """`bench_sharding`'s probe lowers the jitted training step itself: the step must stay a jitted
    function (with `.lower`), and its compiled form must train."""
    from neurojax.train.mesh_probe import step_profile

    cfg = run_config("micro")
    cfg.train.batch_size, cfg.train.seq_len = 2, 8
    out = step_profile(cfg, {"data": 1, "fsdp": 1, "tensor": 1}, repeats=1)
    assert out["compile_s"] > 0 and out["step_s"] > 0
