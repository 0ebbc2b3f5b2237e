"""Training metrics as JSON lines, and loss-curve plots."""
import json
import os
from typing import Iterable, Optional


class MetricsLog:
    """Append-only JSONL file of metric records, each with a `step`.

    On resume, `truncate_after(step)` drops records written after the checkpoint
    being resumed (the steps that will be recomputed), so the log has no duplicates.
    """

    def __init__(self, path: str, enabled: bool = True):
        self.path, self.enabled = path, enabled  # disabled: a non-lead process of a multi-process run
        if enabled:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def truncate_after(self, step: int) -> None:
        if not self.enabled:
            return
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        os.replace(tmp, self.path)


def read_metrics(path: str) -> list[dict]:
    """All records of a metrics file (a missing file has none; a torn last line is skipped)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def plot_losses(curves: Iterable[tuple[str, str]], out_png: str, title: Optional[str] = None) -> str:
    """Plot train (and validation, if logged) loss of each `(label, metrics.jsonl)` into `out_png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for i, (label, path) in enumerate(curves):
        records = read_metrics(path)
        train = [(r["step"], r["loss"]) for r in records if "loss" in r]
        val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
        color = f"C{i}"
        if train:
            ax.plot(*zip(*train), color=color, label=f"{label} train")
        if val:
            ax.plot(*zip(*val), "o--", color=color, label=f"{label} validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / token)")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return out_png
