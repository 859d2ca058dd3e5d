"""float16 weights: half the bytes of an ``mlp``, computed in float32.

:func:`to_fp16` rounds every ``W`` and ``b`` to float16 (round to nearest even, numpy's
cast). The policy then computes as :class:`~rlbudget.policy.model.MLP` documents: the body
input and each hidden layer's output are rounded to float16, the sums and activations run
in float32, and the last layer hands float32 values to the head. The C export stores the
halves as ``uint16_t`` bit patterns (flash halves) and does the same roundings.

No new body kind: a float16 policy is an ``mlp`` whose arrays are float16, and
``policy.safetensors`` stores them as such.
"""

from __future__ import annotations

import numpy as np

from rlbudget.compress import with_transform
from rlbudget.errors import PolicyError
from rlbudget.policy.model import MLP, Dense, Policy

__all__ = ["to_fp16"]

FP16_MAX = float(np.finfo(np.float16).max)


def to_fp16(policy: Policy) -> Policy:
    """``policy`` with float16 weights and biases (storage and compute).

    Zeros stay zeros, so a pruned layer stays sparse on disk.

    :raises PolicyError: the body is not a float32 ``mlp``, or a weight is too large for
        float16 (|w| > 65504 would become infinity).
    """
    body = policy.body
    if not isinstance(body, MLP):
        raise PolicyError(
            f"fp16 applies to an mlp body; this policy has a {body.kind} body "
            "(int8 policies are already smaller: use int8 alone)"
        )
    if body.half:
        raise PolicyError("fp16: the policy's weights are already float16")
    layers = []
    for i, layer in enumerate(body.layers):
        for name in ("W", "b"):
            top = float(np.abs(getattr(layer, name)).max())
            if top > FP16_MAX:
                raise PolicyError(
                    f"fp16: layer {i} has a {name} value of magnitude {top:g}, beyond float16's "
                    f"{FP16_MAX:g}; keep this policy in float32 or quantize it to int8"
                )
        layers.append(Dense(layer.W.astype(np.float16), layer.b.astype(np.float16),
                            layer.activation))  # fmt: skip
    child = Policy(policy.observation_space, policy.action_space, policy.preprocess,
                   MLP(tuple(layers)), policy.head)  # fmt: skip
    return with_transform(policy, child, "fp16")
