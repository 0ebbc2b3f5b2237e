"""The absl binaries end to end (subprocesses), including every bad input of the foundation issue."""
import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICRO = ["--config=experiments/configs/lm.py:micro", "--config.data.source=synthetic"]


def run(binary, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", f"experiments.{binary}", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def error_lines(result):
    """stderr lines that are not library warnings (absl 'W...' / 'I...' prefixed log lines)."""
    return [line for line in result.stderr.splitlines()
            if line.strip() and not line[:1] in "WI" or line.startswith("error:")]


def assert_one_error(result, *needles):
    assert result.returncode != 0, result.stdout
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def snapshot(workdir):
    """Every file under the checkpoint dir with its bytes: to show nothing was overwritten or lost."""
    out = {}
    for root, _, files in os.walk(os.path.join(workdir, "checkpoints")):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, workdir)] = open(path, "rb").read()
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("bin") / "run")
    result = run("train", f"--workdir={workdir}", *MICRO)
    assert result.returncode == 0, result.stderr
    assert "done: step 40" in result.stdout and "tok/s" in result.stdout and "ETA" in result.stdout
    for name in ("config.json", "metrics.jsonl", "loss.png"):
        assert os.path.exists(os.path.join(workdir, name))
    return workdir


def test_generate_is_seeded(trained):
    args = [f"--workdir={trained}", "--prompt=12", "--max_new_tokens=12", "--temperature=1.0", "--top_k=5"]
    a, b = run("generate", *args, "--seed=3"), run("generate", *args, "--seed=3")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout.replace(b.stdout.splitlines()[-1], a.stdout.splitlines()[-1])


def test_evaluate_prints_metrics(trained, tmp_path):
    out = tmp_path / "m.json"
    result = run("evaluate", f"--workdir={trained}", f"--output={out}")
    assert result.returncode == 0, result.stderr
    assert "bits/byte" in result.stdout and "perplexity" in result.stdout
    import json

    metrics = json.loads(out.read_text())
    assert metrics["step"] == 40 and np.isfinite(metrics["bits_per_byte"])


@pytest.mark.parametrize("args,needle", [
    (["--nope=1"], "nope"),
    (["--config.train.nope=1"], "nope"),
    (["--config=experiments/configs/lm.py:bogus"], "bogus"),
    (["--config=no_such_config.py"], "no_such_config.py"),
    (["--config.train.num_steps=abc"], "abc"),
    (["--config.train.warmup_steps=100"], "warmup_steps"),
    (["--config.model.num_heads=5"], "divisible"),
    (["--stop_after_steps=0"], "stop_after_steps"),
])
def test_train_rejects_bad_flags(tmp_path, args, needle):
    workdir = tmp_path / "run"
    assert_one_error(run("train", f"--workdir={workdir}", *MICRO, *args), needle)
    assert not (workdir / "checkpoints").exists()


def test_train_refuses_workdir_of_another_config(trained):
    before = snapshot(trained)
    assert_one_error(run("train", f"--workdir={trained}", *MICRO, "--config.model.d_model=64"),
                     "another config", "model.d_model")
    assert snapshot(trained) == before


@pytest.mark.parametrize("args,needle", [
    (["--prompt="], "empty prompt"),
    (["--prompt_ids=1,999"], "999"),
    (["--prompt_ids=-1"], "-1"),
    (["--prompt=a", "--top_p=0"], "top_p"),
    (["--prompt=a", "--temperature=-1"], "temperature"),
    (["--prompt=a", "--step=7"], "step 7"),
])
def test_generate_rejects_bad_input(trained, args, needle):
    assert_one_error(run("generate", f"--workdir={trained}", *args), needle)


def test_missing_checkpoint(tmp_path):
    assert_one_error(run("generate", f"--workdir={tmp_path}", "--prompt=a"), "not a neurojax training workdir")
    assert_one_error(run("evaluate", f"--workdir={tmp_path / 'nothing'}"), "not a neurojax training workdir")


def test_corrupt_checkpoint(tmp_path):
    workdir = str(tmp_path / "run")
    assert run("train", f"--workdir={workdir}", *MICRO, "--stop_after_steps=20").returncode == 0
    for root, _, files in os.walk(os.path.join(workdir, "checkpoints", "20", "params")):
        for name in files:
            with open(os.path.join(root, name), "r+b") as f:
                f.write(b"\xffcorrupt\x00" * 4)
    before = snapshot(workdir)
    assert_one_error(run("generate", f"--workdir={workdir}", "--prompt=a"), "unreadable")
    assert_one_error(run("train", f"--workdir={workdir}", *MICRO), "unreadable")
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_reproduce_writes_results(tmp_path):
    results = tmp_path / "results"
    result = run("reproduce", f"--workdir={tmp_path / 'w'}", f"--results_dir={results}", "--preset=micro",
                 "--num_steps=6", timeout=1200)  # every table: ~5 min on 2 idle cores, more under load
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(open(results / "ternary_vs_fp.csv")))
    assert rows[0][0] == "model" and [r[0] for r in rows[1:]] == ["ternary (MatMul-free)", "full precision"]
    assert float(rows[1][1]) > 0 and float(rows[2][1]) > 0
    assert float(rows[1][4]) < float(rows[2][4]) / 10  # 2-bit vs 32-bit projection weights
    text = (results / "README.md").read_text()
    assert "measured in this run" in text and (results / "ternary_vs_fp_loss.png").stat().st_size > 1000
    assert_one_error(run("reproduce", "--tables=nope"), "nope")
    # the integer model on the emulated chip: bit-exact at every tap and token of each emulated row
    rows = list(csv.reader(open(results / "neuromorphic.csv")))
    emulated = [r for r in rows[1:] if "emulated" in r[0]]
    assert len(emulated) == 3 and all(r[-1] == "yes" for r in emulated), rows
    assert all(float(r[3]) > 0 and float(r[4]) > 0 for r in emulated)  # tokens/s, mJ/token from the cost model
    # the spike-coded LM: one row per k plus the fine-tuned one; events cost less than dense MACs
    rows = list(csv.reader(open(results / "spiking_sparsity.csv")))
    head, body = rows[0], rows[1:]
    assert head[:3] == ["k", "fine-tuned", "sparsity"] and len(body) == 6 and body[-1][1].endswith("steps")
    col = {name: i for i, name in enumerate(head)}
    for r in body:
        assert 0 < float(r[col["sparsity"]]) < 1 and float(r[col["val bits/byte"]]) > 0
        assert float(r[col["spike adds (nJ/token)"]]) < float(r[col["int8 MAC (nJ/token)"]]) < float(
            r[col["fp16 MAC (nJ/token)"]])
    silent = [float(r[col["silent inputs"]]) for r in body[:-1]]
    assert silent == sorted(silent, reverse=True)  # a larger k (lower threshold) leaves fewer inputs silent
    layers = list(csv.reader(open(results / "spiking_sparsity_layers.csv")))[1:]
    assert len(layers) == 6 * 2 + 1  # every BitLinear of the 2-layer micro model, and the head


@pytest.mark.parametrize("args, needle", [
    (["--chip=nope"], "unknown chip"), (["--tokens=0"], "--tokens"), (["--mode=fast"], "mode"),
    (["--energy_model=nope"], "nope"), (["--int_model=/nonexistent"], "no integer model"),
    (["--chip=loihi2"], "payload"),
])
def test_emulate_rejects_bad_input(args, needle):
    assert_one_error(run("emulate", *args), needle)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    """A real kill -9 mid-run; rerunning the same command ends where an uninterrupted run ends."""
    from neurojax.train import load_trained

    args = MICRO + ["--config.train.checkpoint_every=1", "--config.train.num_steps=40"]
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    assert run("train", f"--workdir={straight}", *args).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "experiments.train", f"--workdir={killed}", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    ckpts = os.path.join(killed, "checkpoints")
    while time.time() < deadline and proc.poll() is None:
        done = [d for d in os.listdir(ckpts) if d.isdigit()] if os.path.isdir(ckpts) else []
        if done and max(map(int, done)) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = run("train", f"--workdir={killed}", *args)
    assert result.returncode == 0, result.stderr
    assert "resumed" in result.stdout
    a, b = load_trained(straight), load_trained(killed)
    for x, y in zip(*(map(np.asarray, __import__("jax").tree_util.tree_leaves(t.params)) for t in (a, b))):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_sigterm_saves_and_exits(tmp_path):
    workdir = str(tmp_path / "run")
    args = MICRO + ["--config.train.num_steps=100000", "--config.train.checkpoint_every=100000",
                    "--config.train.log_every=1"]
    proc = subprocess.Popen([sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    for line in proc.stdout:  # wait until training is under way
        if line.startswith("step 3/"):
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 1
    assert "checkpoint saved" in rest
    steps = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
    assert steps and max(steps) >= 3
