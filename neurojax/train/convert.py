"""Convert a trained Transformer++ workdir into a hybrid workdir, and the run config that continues training it.

    convert_workdir("workdir/teacher", "workdir/converted", ConversionConfig())   # step 0, ready to evaluate
    cfg = continual_config("workdir/converted", num_steps=60, kl_weight=1.0)     # then train(cfg, "workdir/student")

The converted workdir holds the student's run config (the teacher's data and train sections, the
hybrid `model` section, and a `convert` section recording the teacher and the settings) and one
checkpoint at step 0 whose meta lists the parameters the conversion added (`new_params`) and the
per-layer calibration. Every binary that reads a workdir (evaluate, generate) reads it. The
continual run starts from it (`init.params_from`), distils from the teacher (`distill.*`), and is an
ordinary resumable run.
"""
import dataclasses
import json
import os
import shutil
from typing import Callable, Optional

import jax
import ml_collections
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.files import write_json_atomic
from neurojax.nn.hybrid_conversion import ConversionConfig, convert_params, new_param_paths, student_config
from neurojax.nn.transformer_config import TransformerConfig
from neurojax.train.checkpoint import Checkpointer
from neurojax.train.config import add_continual_sections, validate_run_config
from neurojax.train.data_setup import load_run_data
from neurojax.train.model_factory import FAMILY_FIELD, HYBRID
from neurojax.train.restore import load_trained
from neurojax.train.start import NEW_PARAMS_META
from neurojax.train.workdir import CONFIG_FILE, read_run_config

CALIBRATION_SEED = 7919  # the calibration batches' own seed: not the training run's batches


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Token batches (drawn from the teacher's training data) on which the new GLA parameters are fitted."""

    batches: int = 2
    batch_size: int = 8
    seq_len: int = 64  # short contexts: where the converted layer should start close to the teacher


def _fresh(path: str) -> None:
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise NeurojaxError(f"--workdir {path!r} already exists and is not empty; give a new directory")


def convert_workdir(teacher_workdir: str, workdir: str, conv: ConversionConfig = ConversionConfig(),
                    calibration: Optional[Calibration] = Calibration(), seed: int = 0,
                    log: Callable[[str], None] = print) -> dict:
    """Write the converted hybrid of `teacher_workdir`'s latest checkpoint into the new `workdir`.

    Returns `{"config": HybridConfig, "calibration": [LayerCalibration], "new_params": [...]}`.
    Nothing is written on any error (staged, then renamed into place).
    """
    teacher = load_trained(teacher_workdir)
    tcfg = teacher.model.config
    if not isinstance(tcfg, TransformerConfig):
        raise NeurojaxError(f"the teacher {teacher_workdir!r} is not a Transformer++ run (model.{FAMILY_FIELD}="
                            f"{teacher.config.model.get(FAMILY_FIELD, 'matmulfree')!r}); only attention layers "
                            "convert")
    student = student_config(tcfg, conv)
    _fresh(workdir)
    batches = None
    if calibration is not None and calibration.batches > 0:
        data = load_run_data(teacher.config)  # the teacher's training split, with the calibration's own seed
        it = data.iterator(calibration.batch_size, calibration.seq_len, CALIBRATION_SEED)
        batches = [it.peek(i)[:, :-1] for i in range(calibration.batches)]
    log(f"[convert] {teacher_workdir} (step {teacher.step}) -> {workdir}: layout {'/'.join(student.layer_kinds)}, "
        f"window {student.window}" + ("" if batches is None else f", calibrating on {len(batches)} batches of "
                                                                  f"{batches[0].shape[0]}x{batches[0].shape[1]} tokens"))
    params, report = convert_params(tcfg, teacher.params, student, jax.random.PRNGKey(seed), batches, conv.half_lives,
                                    log=log)
    record = json.loads(json.dumps(teacher.config.to_dict()))
    for name in ("init", "distill"):
        record.pop(name, None)
    record["model"] = {FAMILY_FIELD: HYBRID, **student.to_dict()}
    record["convert"] = {"teacher": os.path.abspath(teacher_workdir), "teacher_step": teacher.step,
                         **conv.to_dict(), "seed": seed,
                         "calibration": None if calibration is None else dataclasses.asdict(calibration)}
    validate_run_config(ml_collections.ConfigDict(record))
    new = ["/".join(p) for p in new_param_paths(student)]
    meta = {"step": 0, "config": record, NEW_PARAMS_META: new,
            "calibration": [dataclasses.asdict(r) for r in report]}
    staging = f"{os.path.abspath(workdir).rstrip(os.sep)}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.makedirs(staging)
        write_json_atomic(os.path.join(staging, CONFIG_FILE), record)
        ckpt = Checkpointer(staging, max_to_keep=None)
        try:
            ckpt.save(0, params, {"step": np.int32(0)}, meta)
        finally:
            ckpt.close()
        if os.path.isdir(workdir):
            os.rmdir(workdir)  # empty (checked above)
        os.rename(staging, workdir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"[convert] wrote {workdir}: {len(new)} new parameter tensors, the rest copied from the teacher")
    return {"config": student, "calibration": report, "new_params": new}


def continual_config(converted_workdir: str, *, num_steps: Optional[int] = None, kl_weight: float = 1.0,
                     temperature: float = 1.0, new_params_lr_scale: float = 1.0,
                     learning_rate: Optional[float] = None) -> ml_collections.ConfigDict:
    """The run config that continues training a converted workdir (its model, data and train sections), starting
    from its parameters and, with `kl_weight > 0`, distilling from the teacher it records."""
    record = read_run_config(converted_workdir)
    if "convert" not in record:
        raise NeurojaxError(f"{converted_workdir!r} is not a converted workdir (its config has no 'convert' section); "
                            "make one with experiments/convert_hybrid.py")
    teacher = record["convert"]["teacher"]
    record = {k: v for k, v in record.items() if k != "convert"}
    cfg = add_continual_sections(ml_collections.ConfigDict(record))
    cfg.init.params_from = os.path.abspath(converted_workdir)
    cfg.init.new_params_lr_scale = float(new_params_lr_scale)
    cfg.distill.teacher = teacher if kl_weight > 0 else ""
    cfg.distill.kl_weight = float(kl_weight)
    cfg.distill.temperature = float(temperature)
    if num_steps is not None:
        cfg.train.num_steps = int(num_steps)
        cfg.train.warmup_steps = min(int(cfg.train.warmup_steps), max(1, int(num_steps) // 10))
        cfg.train.eval_every = min(int(cfg.train.eval_every), int(num_steps))
        cfg.train.checkpoint_every = min(int(cfg.train.checkpoint_every), int(num_steps))
    if learning_rate is not None:
        cfg.train.learning_rate = float(learning_rate)
    validate_run_config(cfg)
    return cfg


def teacher_of(converted_workdir: str) -> str:
    """The teacher workdir a converted workdir records."""
    record = read_run_config(converted_workdir)
    if "convert" not in record:
        raise NeurojaxError(f"{converted_workdir!r} is not a converted workdir")
    return record["convert"]["teacher"]


def calibration_report(converted_workdir: str) -> list[dict]:
    """The per-GLA-layer calibration a conversion recorded in its step-0 checkpoint meta."""
    ckpt = Checkpointer(converted_workdir, read_only=True)
    try:
        return ckpt.restore_meta(0).get("calibration", [])
    finally:
        ckpt.close()
