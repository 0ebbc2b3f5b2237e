"""Zero-shot multiple-choice accuracy of a trained model, scored as lm-evaluation-harness 0.4.13 scores it.

    python -m experiments.zeroshot --workdir=workdir/tiny --data_dir=zeroshot_data/
    python -m experiments.zeroshot --workdir=workdir/tiny --tasks=piqa=my/piqa_val.jsonl,arc_easy=arc/test.jsonl
    python -m experiments.zeroshot --workdir=workdir/tiny --data_dir=zeroshot_data/ --tasks=hellaswag --limit=500

Tasks: arc_easy, arc_challenge, hellaswag, openbookqa, piqa, winogrande. Each is read from a local
JSONL file (one JSON object per line; nothing is downloaded): `<data_dir>/<task>.jsonl`, or the path
given as `--tasks=<task>=<path>`. The fields are those of the Hugging Face datasets lm-eval loads:

  arc_easy, arc_challenge   question (str), choices {"text": [str], "label": [str]}, answerKey (str)
                            (or the AI2 release layout: question {"stem", "choices": [{"text", "label"}]})
  openbookqa                question_stem (str), choices {"text": [str], "label": [str]}, answerKey (str)
  piqa                      goal, sol1, sol2 (str), label (0 or 1)
  hellaswag                 activity_label, ctx_a, ctx_b (str), endings ([str]), label (index)
  winogrande                sentence (str with one "_"), option1, option2 (str), answer ("1" or "2")

A line with a missing or malformed field stops the run with an error naming the file and line.
Prints acc / acc_norm with lm-eval's stderr per task (a progress line on stderr while scoring), then
a table in the paper's layout with the published MatMul-free 370M figures beside, labelled as
published. Prompts, tokenization, truncation and metrics: `neurojax.eval.zeroshot`.
The run's tokenizer encodes the prompts (an imported checkpoint's `tokenizer.json` /
`tokenizer.model`, else bytes); BOS follows `--add_bos` and is reported.
"""
import json
import os

from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.interop.hf_checkpoint import workdir_tokenizer
from neurojax.eval import zeroshot
from neurojax.tables import Table, table_markdown
from neurojax.train import load_trained

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding the checkpoint (any model family).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory holding <task>.jsonl files.")
_TASKS = flags.DEFINE_list("tasks", None, "Tasks to score: names (read from --data_dir) or name=path entries "
                           "(default: all six, from --data_dir). Known: " + ", ".join(zeroshot.TASKS_ORDER))
_BATCH = flags.DEFINE_integer("batch_size", 32, "Requests (one per choice) scored per batch.")
_LIMIT = flags.DEFINE_integer("limit", 0, "Score only the first N examples of each task (0 = all).")
_MAX_LENGTH = flags.DEFINE_integer("max_length", 0, "Model input length; longer requests keep their last tokens "
                                   "(0 = the model's max_seq_len, else lm-eval's default 2048).")
_ADD_BOS = flags.DEFINE_enum("add_bos", "default", ["default", "true", "false"],
                             "Prepend BOS: 'default' follows the tokenizer's own default (lm-eval 0.4.13); "
                             "'false' matches older lm-eval 0.4.x.")
_METRIC = flags.DEFINE_enum("metric", "paper", list(zeroshot.METRIC_CHOICES),
                            "Metric in the paper-layout table: 'paper' (acc_norm for ARC-c, HellaSwag, OBQA; acc "
                            "elsewhere: an assumption, the paper does not say), 'acc' or 'acc_norm'.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress line on stderr.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write every metric and per-example log-likelihood as JSON.")


def task_files(tasks, data_dir) -> dict[str, str]:
    """name -> JSONL path from `--tasks` entries (`name` or `name=path`) and `--data_dir`."""
    entries = tasks or list(zeroshot.TASKS_ORDER)
    files = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        name = name.strip()
        zeroshot.task_spec(name)
        if name in files:
            raise NeurojaxError(f"task {name!r} is given twice in --tasks")
        if not sep:
            if not data_dir:
                raise NeurojaxError(f"no file for task {name!r}: give --data_dir (holding {name}.jsonl) or "
                                    f"--tasks={name}=<path>")
            path = os.path.join(data_dir, f"{name}.jsonl")
        if not path or not os.path.isfile(path):
            raise NeurojaxError(f"the {name} file {path!r} does not exist")
        files[name] = path
    return files


def main(argv):
    if not _WORKDIR.value:
        raise NeurojaxError("--workdir is required")
    if _LIMIT.value < 0:
        raise NeurojaxError(f"--limit must be >= 0 (0 = all), got {_LIMIT.value}")
    if _MAX_LENGTH.value < 0:
        raise NeurojaxError(f"--max_length must be >= 0 (0 = the model's), got {_MAX_LENGTH.value}")
    if _DATA_DIR.value and not os.path.isdir(_DATA_DIR.value):
        raise NeurojaxError(f"--data_dir {_DATA_DIR.value!r} is not a directory")
    if _BATCH.value <= 0:
        raise NeurojaxError(f"--batch_size must be positive, got {_BATCH.value}")
    files = task_files(_TASKS.value, _DATA_DIR.value)
    # Every file is read and checked before the checkpoint is loaded: bad lines fail fast.
    examples = {name: zeroshot.load_task(name, path, _LIMIT.value or None) for name, path in files.items()}
    trained = load_trained(_WORKDIR.value, _STEP.value)
    add_bos = {"default": None, "true": True, "false": False}[_ADD_BOS.value]
    results = zeroshot.evaluate_zeroshot(
        trained.model, {"params": trained.params}, examples, workdir_tokenizer(_WORKDIR.value), add_bos=add_bos,
        max_length=_MAX_LENGTH.value or None, batch_size=_BATCH.value, limit=_LIMIT.value or None,
        progress=_PROGRESS.value)
    results["files"] = files
    label = f"{os.path.basename(os.path.normpath(_WORKDIR.value))} (step {trained.step}, this run)"
    columns, rows = zeroshot.detail_table(results)
    _cli.say(table_markdown(Table("zeroshot_tasks", f"Zero-shot accuracy per task: {label}", columns, rows,
                                  notes=["stderr: sample std (ddof 1) / sqrt(n), as lm-eval reports it; "
                                         "acc_norm: log-likelihood / choice length in characters."])))
    columns, rows, notes = zeroshot.paper_table(results, label, _METRIC.value)
    _cli.say(table_markdown(Table("zeroshot", "Zero-shot accuracy (%) in the paper's layout", columns, rows,
                                  notes=notes)))
    if _OUTPUT.value:
        results.update(workdir=_WORKDIR.value, step=trained.step, metric=_METRIC.value)
        with open(_OUTPUT.value, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    _cli.run(main)
