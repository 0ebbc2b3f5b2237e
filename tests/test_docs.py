"""The docs show code that runs: the WORKSPACE.md mixer example trains through the library."""
import os
import re

import numpy as np

from neurojax.nn import TOKEN_MIXERS
from neurojax.train import load_trained, run_config, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", open(os.path.join(REPO, path), encoding="utf-8").read(), re.S)


def test_workspace_token_mixer_example_trains(tmp_path):
    block = next(b for b in _python_blocks("WORKSPACE.md") if "TOKEN_MIXERS.register" in b)
    name = re.search(r'register\("(\w+)"', block).group(1)
    if name not in TOKEN_MIXERS:
        exec(compile(block, "WORKSPACE.md", "exec"), {})
    cfg = run_config("micro")
    cfg.model.token_mixer = name
    cfg.data.source = "synthetic"
    cfg.train.update(num_steps=3, batch_size=2, seq_len=8, warmup_steps=1, log_every=1, eval_every=0,
                     eval_batches=1, checkpoint_every=3)
    summary = train(cfg, str(tmp_path / "run"), log=lambda m: None)
    assert summary["finished"] and np.isfinite(summary["train_loss"])
    params = load_trained(str(tmp_path / "run")).params
    assert "c_proj" in params["layers_0"]["attn"]  # the notebook-defined mixer, not MLGRU


def test_readme_names_existing_binaries():
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    for binary in set(re.findall(r"experiments\.(\w+)", text)):
        assert os.path.exists(os.path.join(REPO, "experiments", f"{binary}.py")), binary
