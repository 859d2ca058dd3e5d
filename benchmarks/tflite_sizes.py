"""Sizes of ``policy.tflite`` next to TFLite Micro's ``hello_world`` (Dense 1→16→16→1:
3,164 B float, 2,704 B int8), and the TFLite Micro arena each needs.

Usage (from the repository root, with the tflite extra and tflite-micro installed):

    python benchmarks/tflite_sizes.py

Policies: a 1-16-16-1 relu net with random weights (seed 0) on a Box of one dimension,
identity head, fp32 and int8 (calibrated on 1,000 points of [0, 2π], compress's defaults:
per-layer scales, the input normalization folded in front, a float last layer); and the
4-64-64-2 tanh CartPole net of the tests, int8. The int8 file breaks down per part
(metadata, per-channel quantization parameters) so the difference with hello_world is
accounted for.

Then the effect of the requantization rule (TFLite Micro rounds twice, LiteRT and
compress's "high_word" once) on 10,000 observations of the tests (half uniform, half
visited): observations with one int8 activation or more that differs, and actions that
differ, between each policy and ``tflite_rounding`` of it.

Last, what quantizing on TFLite Micro's rule costs (``compress -m int8 --requantize
tflite`` against the default): each policy's action agreement with the float policy on
those observations (discrete: identical; Box: within 5 % of the span), and the ``.text``
of its ``policy.c`` for Cortex-M0+ and M4F (needs arm-none-eabi-gcc).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from rlbudget.compress.methods import action_agreement
from rlbudget.compress.quantize import quantize_int8, tflite_rounding
from rlbudget.envs import SpaceSpec
from rlbudget.export.tflite import arena_bytes, build_model
from rlbudget.policy import Head, Policy
from rlbudget.policy.model import quantize_input
from tests.factories import cartpole_mlp, observations, pendulum_mlp, random_mlp


def main() -> None:
    space = SpaceSpec("box", (1,), None, (-10.0,), (10.0,), "float32")
    fp32 = Policy(space, space, (), random_mlp([1, 16, 16, 1], "relu", 0), Head("identity"), {})
    x = np.linspace(0, 2 * np.pi, 1000, dtype=np.float32)[:, None]
    cartpole = quantize_int8(cartpole_mlp("tanh"), observations("CartPole-v1")[::5])
    rows = [("1-16-16-1 relu fp32", fp32, "3,164 B (hello_world float)"),
            ("1-16-16-1 relu int8", quantize_int8(fp32, x), "2,704 B (hello_world int8)"),
            ("4-64-64-2 tanh int8 (CartPole)", cartpole, "")]  # fmt: skip
    print("| policy | policy.tflite | metadata | scales + zero points | constants | "
          "TFLite Micro arena | TFLM's own |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, policy, theirs in rows:
        data = build_model(policy)
        meta, quant, consts = _parts(data)
        print(
            f"| {name} | {len(data):,} B | {meta:,} B | {quant:,} B | {consts:,} B | "
            f"{arena_bytes(data):,} B | {theirs} |"
        )


def _parts(data: bytes) -> tuple[int, int, int]:
    """Bytes of the metadata buffers, of the quantization vectors (4-byte scales, 8-byte
    zero points) and of the constant tensors' data, read back with the generated schema."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    size = [0 if b.data is None else len(b.data) for b in model.buffers]
    meta = sum(size[m.buffer] for m in model.metadata or [])
    tensors = model.subgraphs[0].tensors
    quant = sum(12 * len(t.quantization.scale) for t in tensors
                if t.quantization is not None and t.quantization.scale is not None)  # fmt: skip
    return meta, quant, sum(size[t.buffer] for t in tensors)


NETS = (
    ("4-64-64-2 tanh CartPole", lambda: cartpole_mlp("tanh"), "CartPole-v1"),
    ("4-64-64-2 relu CartPole", lambda: cartpole_mlp("relu"), "CartPole-v1"),
    ("3-64-64-1 tanh Pendulum, tanh_rescale", lambda: pendulum_mlp("tanh", "tanh_rescale"),
     "Pendulum-v1"),
)  # fmt: skip


def rounding_effect() -> None:
    print("\n| policy | observations with an activation off | actions off |")
    print("|---|---|---|")
    for name, make, env in NETS:
        obs = observations(env)
        once = quantize_int8(make(), obs[::5])
        twice = tflite_rounding(once)
        x = once.preprocess[0].apply(obs)
        acts = _activations(once, x) != _activations(twice, x)
        a, b = (np.asarray(p.act(obs)).reshape(len(obs), -1) for p in (once, twice))
        print(f"| {name} | {acts.any(axis=1).mean():.1%} | {(a != b).any(axis=1).mean():.1%} |")


def _activations(policy: Policy, x: np.ndarray) -> np.ndarray:
    """Every int8 layer's output for the batch ``x``, side by side."""
    first = policy.body.layers[0]
    q = quantize_input(x, first.input_scale, first.input_zero_point)
    out = []
    for layer in policy.body.layers:
        q = layer.apply(q)
        out.append(q.astype(np.float64))
    return np.concatenate(out, axis=1)


def rule_cost() -> None:
    from rlbudget.export.arm import cortex_m_sizes
    from rlbudget.export.c import export_c

    print("\n| policy | rule | agreement with float | .text M0+ | .text M4F |")
    print("|---|---|---|---|---|")
    for name, make, env in NETS:
        obs = observations(env)
        for rule in ("auto", "tflite"):
            p = quantize_int8(make(), obs[::5], requantize=rule)
            agree = action_agreement(make(), p, obs).rate
            with tempfile.TemporaryDirectory() as tmp:
                export_c(p, Path(tmp) / "c")
                sizes = cortex_m_sizes(Path(tmp) / "c") or {}
            text = [f"{sizes[t].text:,} B" if t in sizes else "—"
                    for t in ("cortex-m0plus", "cortex-m4f")]  # fmt: skip
            print(f"| {name} | {rule} | {agree:.2%} | {' | '.join(text)} |")


if __name__ == "__main__":
    main()
    rounding_effect()
    rule_cost()
