"""Training config for the MatMul-free LM, the hybrid (GLA + sliding-window attention) LM or the Transformer++.
Pick a preset after a colon:

    --config=experiments/configs/lm.py              # tiny MatMul-free LM (default)
    --config=experiments/configs/lm.py:micro        # seconds, for smoke tests
    --config=experiments/configs/lm.py:370M         # the published 370M architecture
    --config=experiments/configs/lm.py:hybrid_tiny  # SpikingBrain-style hybrid, tiny (model.family=hybrid)
    --config=experiments/configs/lm.py:hybrid_micro # the hybrid, seconds, for smoke tests
    --config=experiments/configs/lm.py:transformer_tiny   # LLaMA-style Transformer++ at the tiny size
    --config=experiments/configs/lm.py:transformer_micro  # the Transformer++, seconds, for smoke tests

and override any field: `--config.model.full_precision=True --config.train.num_steps=100`
(hybrid: `--config.model.window=128`, see `neurojax.nn.HybridConfig`; Transformer++:
`--config.model.num_kv_heads=2`, see `neurojax.nn.TransformerConfig`).

Hybrid presets tie `train.warmup_steps` to `train.num_steps // 10` (a lazy reference, so
`--config.train.num_steps=20` alone gives a valid schedule; an explicit
`--config.train.warmup_steps` still wins). MatMul-free presets keep their fixed defaults, so
the configs of existing runs are unchanged.
"""
from neurojax.train.config import run_config
from neurojax.train.model_factory import is_hybrid_preset

SMOKE_PRESETS = ("micro", "hybrid_micro", "transformer_micro")


def get_config(preset: str = "tiny"):
    cfg = run_config(preset or "tiny")
    if preset in SMOKE_PRESETS:
        cfg.train.update(num_steps=40, batch_size=4, seq_len=32, warmup_steps=4, log_every=10,
                         eval_every=0, eval_batches=2, checkpoint_every=20)
    if is_hybrid_preset(preset or "tiny"):  # same defaults (600 // 10 = 60, 40 // 10 = 4), lazily tied
        cfg.train.warmup_steps = cfg.train.get_ref("num_steps") // 10
    return cfg
