"""The Lava side of `experiments.bench_interpreter`: run one LIF layer in Lava's fixed-point models.

Run by the benchmark in a SEPARATE interpreter that has lava-nc 0.10.0 installed (Python 3.10):

    /tmp/lava-venv/bin/python experiments/lava_reference.py IN.npz OUT.npz

Nothing in neurojax imports this file and lava is never a dependency of the project: lava is
imported only inside `main`. IN.npz holds `weights` [n_dst, n_src] (Lava's mixed-sign 8-bit
range, given to Dense as they are with sign mode MIXED: Lava truncates their LSB itself),
`raster` [n_src, steps] (0/1 spikes), scalars `du`, `dv`, `vth`, `bias_mant`, `bias_exp`,
`warmup` (steps run before the timed run: the first `run` call also compiles the processes
and starts their workers) and `timed` (steps of the timed run). Network: RingBuffer source
(the raster) -> Dense (binary messages) -> LIF -> RingBuffer sink (the spikes), all selected
with `Loihi2SimCfg(select_tag="fixed_pt")` (PySendModelFixed, PyDenseModelBitAcc,
PyLifModelBitAcc, PyReceiveModelFixed). OUT.npz gets `spikes` [steps, n] (int8), the final
`u` and `v`, and the wall-clock seconds of both runs and of reading the results back; the
same figures are printed as one JSON line.
"""
import json
import sys
import time

import numpy as np


def main(argv):
    if len(argv) != 3:
        print("usage: lava_reference.py IN.npz OUT.npz", file=sys.stderr)
        return 2
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF
    from lava.utils.weightutils import SignMode

    cfg = np.load(argv[1])
    w, raster = cfg["weights"].astype(np.int32), cfg["raster"].astype(np.int32)
    n_dst, steps = w.shape[0], raster.shape[1]
    warmup, timed = int(cfg["warmup"]), int(cfg["timed"])
    assert warmup + timed == steps, (warmup, timed, steps)
    src = Source(data=raster)
    # mixed sign mode given explicitly (Lava would derive it from the weights): 8-bit weights, LSB dropped
    dense = Dense(weights=w, num_message_bits=0, num_weight_bits=8, sign_mode=SignMode.MIXED)
    lif = LIF(shape=(n_dst,), du=int(cfg["du"]), dv=int(cfg["dv"]), vth=int(cfg["vth"]),
              bias_mant=int(cfg["bias_mant"]), bias_exp=int(cfg["bias_exp"]))
    sink = Sink(shape=(n_dst,), buffer=steps)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    t0 = time.perf_counter()
    lif.run(condition=RunSteps(num_steps=warmup), run_cfg=run_cfg)
    t1 = time.perf_counter()
    lif.run(condition=RunSteps(num_steps=timed), run_cfg=run_cfg)
    t2 = time.perf_counter()
    # Var.get() of the sink's [n, steps] buffer is slow (Lava sends arrays element by element):
    # ~20 s for 1024 x 1001; it is outside the timed runs and reported as readback_s
    spikes = np.asarray(sink.data.get()).T.astype(np.int8)  # [steps, n]
    u, v = np.asarray(lif.u.get(), np.int64), np.asarray(lif.v.get(), np.int64)
    t3 = time.perf_counter()
    lif.stop()
    result = {"startup_s": t1 - t0, "timed_s": t2 - t1, "readback_s": t3 - t2, "warmup": warmup, "timed": timed,
              "spikes": int(spikes.sum())}
    np.savez(argv[2], spikes=spikes, u=u, v=v, startup_s=t1 - t0, timed_s=t2 - t1, readback_s=t3 - t2)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
