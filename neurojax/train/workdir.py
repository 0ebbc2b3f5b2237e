"""A workdir belongs to one run config: record it atomically, refuse a different one on resume."""
import json
import os
from typing import Any

from neurojax.errors import NeurojaxError
from neurojax.files import write_json_atomic

CONFIG_FILE = "config.json"
# Sections whose every field defines the run; changing any of them makes resuming meaningless.
# Others (logging and checkpoint cadence, eval size) may change between resumes.
IDENTITY_FIELDS = {
    "model": None,
    "data": None,
    "train": ("num_steps", "batch_size", "seq_len", "learning_rate", "warmup_steps", "weight_decay",
              "b1", "b2", "grad_clip", "seed"),
}


def read_run_config(workdir: str) -> dict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise NeurojaxError(f"{workdir!r} has no {CONFIG_FILE}: it is not a neurojax training workdir")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise NeurojaxError(f"{path!r} is unreadable ({e}); the workdir was left untouched") from e


# Optional sections (continual training): a run config without one behaves as with these defaults,
# so the configs of runs written before they existed still compare equal on resume.
OPTIONAL_SECTIONS = {
    "init": {"params_from": "", "new_params_lr_scale": 1.0},
    "distill": {"teacher": "", "kl_weight": 0.0, "temperature": 1.0},
}
IDENTITY_FIELDS.update({name: None for name in OPTIONAL_SECTIONS})
# Fields added to a section after runs were written: absent means this default.
FIELD_DEFAULTS = {"data": {"tokenizer": ""}}


def identity(config: dict) -> dict:
    """The part of a run config that must match for a resume."""
    out = {}
    for section, fields in IDENTITY_FIELDS.items():
        values = {**OPTIONAL_SECTIONS.get(section, {}), **FIELD_DEFAULTS.get(section, {}), **config.get(section, {})}
        out[section] = dict(values) if fields is None else {k: values.get(k) for k in fields}
    return out


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix[:-1]}: {old!r} in the workdir, {new!r} now"]


def claim_workdir(workdir: str, config: dict) -> None:
    """Record `config` in a new workdir, or check it matches the one already recorded."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(path):
        diffs = _diff(identity(read_run_config(workdir)), identity(config))
        if diffs:
            raise NeurojaxError(f"workdir {workdir!r} was written by another config ({'; '.join(diffs[:4])}"
                                f"{'; ...' if len(diffs) > 4 else ''}); use a new --workdir or the same config")
    write_json_atomic(path, config)
