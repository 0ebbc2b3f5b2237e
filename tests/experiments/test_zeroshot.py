"""experiments.zeroshot end to end, and the Transformer++ through the train / generate / evaluate binaries."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A corpus in which each colour is always followed by its own word: a model that learned it must
# answer every synthetic question below correctly.
PAIRS = {"red": "apple", "blue": "sky", "green": "grass", "pink": "coin"}


def run(binary, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", f"experiments.{binary}", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0]


def write_tasks(directory):
    """OpenBookQA-format (bare stem) and WinoGrande-format (partial scoring) questions about PAIRS."""
    os.makedirs(directory, exist_ok=True)
    colours, words = list(PAIRS), list(PAIRS.values())
    with open(os.path.join(directory, "openbookqa.jsonl"), "w") as f:
        for i, colour in enumerate(colours):
            f.write(json.dumps({"question_stem": colour, "choices": {"text": words, "label": list("ABCD")},
                                "answerKey": "ABCD"[i]}) + "\n")
    with open(os.path.join(directory, "winogrande.jsonl"), "w") as f:
        for i, colour in enumerate(colours):
            wrong = colours[(i + 1) % len(colours)]
            options, answer = ([colour, wrong], "1") if i % 2 == 0 else ([wrong, colour], "2")
            f.write(json.dumps({"sentence": f"_ {PAIRS[colour]}", "option1": options[0], "option2": options[1],
                                "answer": answer}) + "\n")
    return directory


@pytest.mark.parametrize("args, needle", [
    (["--data_dir=."], "--workdir is required"),
    (["--workdir=nowhere", "--tasks=mmlu=x.jsonl"], "unknown zero-shot task 'mmlu'"),
    (["--workdir=nowhere", "--tasks=piqa"], "give --data_dir (holding piqa.jsonl) or --tasks=piqa=<path>"),
    (["--workdir=nowhere", "--tasks=piqa=/no/such.jsonl"], "the piqa file '/no/such.jsonl' does not exist"),
    (["--workdir=nowhere", "--data_dir=.", "--limit=-1"], "--limit must be >= 0"),
])
def test_bad_flags(args, needle):
    assert needle in error_line(run("zeroshot", *args))


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "piqa.jsonl"
    path.write_text(json.dumps({"goal": "g", "sol1": "a", "sol2": "b", "label": 0}) + "\n"
                    + json.dumps({"goal": "g", "sol1": "a", "label": 0}) + "\n")
    line = error_line(run("zeroshot", "--workdir=nowhere", f"--tasks=piqa={path}"))
    assert f"{path}:2: piqa example is missing field 'sol2'" in line


@pytest.mark.slow
def test_transformer_trains_generates_evaluates_and_answers(tmp_path):
    rng = np.random.default_rng(0)
    corpus = tmp_path / "pairs.txt"
    corpus.write_text("\n".join(f"{c} {PAIRS[c]}" for c in rng.choice(list(PAIRS), 3000)) + "\n")
    workdir = str(tmp_path / "run")
    train = run("train", "--config=experiments/configs/lm.py:transformer_micro", f"--workdir={workdir}",
                f"--data={corpus}", "--config.train.num_steps=120", "--config.train.batch_size=8",
                "--config.train.seq_len=64", "--config.train.warmup_steps=10", "--config.train.learning_rate=0.01",
                "--config.train.checkpoint_every=120", "--config.model.num_kv_heads=2")
    assert train.returncode == 0, train.stderr
    assert "Transformer++ (4 heads, 2 kv heads)" in train.stdout and "done: step 120" in train.stdout
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["family"] == "transformer"

    gen = run("generate", f"--workdir={workdir}", "--prompt=blue", "--max_new_tokens=8", "--temperature=0")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("blue sky"), gen.stdout  # greedy decoding with the KV cache
    ev = run("evaluate", f"--workdir={workdir}", "--max_batches=2")
    assert ev.returncode == 0 and "bits/byte" in ev.stdout, ev.stderr

    data = write_tasks(str(tmp_path / "tasks"))
    out = str(tmp_path / "zeroshot.json")
    zs = run("zeroshot", f"--workdir={workdir}", f"--data_dir={data}", "--tasks=openbookqa,winogrande",
             "--batch_size=5", f"--output={out}")
    assert zs.returncode == 0, zs.stderr
    assert "openbookqa: 16/16 requests" in zs.stderr and "winogrande: 8/8 requests" in zs.stderr  # progress
    with open(out) as f:
        result = json.load(f)
    assert result["tasks"]["openbookqa"]["acc"] == 1.0 and result["tasks"]["openbookqa"]["acc_norm"] == 1.0
    assert result["tasks"]["winogrande"]["acc"] == 1.0 and "acc_norm" not in result["tasks"]["winogrande"]
    assert result["bos"] == "no BOS" or result["bos"].startswith("tokenizer default")
    assert result["max_length"] == 512  # transformer_micro's max_seq_len
    assert "| MatMul-free 370M (published, paper) | 42.6 | 23.8 | 32.8 | 28.4 | 63.0 | 49.2 | 40.3 |" in zs.stdout
    assert "| openbookqa | 4 | 100 | 0 | 100 | 0 |" in zs.stdout  # acc 100 +- 0, acc_norm 100 +- 0
    assert "| winogrande | 4 | 100 | 0 | - | - |" in zs.stdout
