"""Image encoders for SB3 training, chosen by the hyperparameter ``features_extractor``
(``--hyperparams features_extractor=depthwise``, ``=depthwise-wide`` or ``=nature``):

- ``nature``: SB3's ``NatureCNN`` (Mnih et al. 2015): 8×8/4 → 4×4/2 → 3×3/1 convs of
  32, 64, 64 channels, then a 512-wide linear layer;
- ``depthwise``: :class:`DepthwiseArch`, a depthwise-separable encoder in the manner of
  MobileNet (Howard et al. 2017): a strided conv stem on non-overlapping patches, then
  blocks of a depthwise 3×3 conv (one filter per channel) and a pointwise 1×1 conv, then
  flatten and a small linear layer. No padding and no batch norm, so that each layer is
  one conv2d, depthwise conv2d or dense layer of rlbudget's policy with nothing to fold.
- ``depthwise-wide``: the same with twice the channels (16, 32, 64) and 128 features.

All keep NatureCNN's structure, a ``cnn`` ``nn.Sequential`` ending in ``Flatten`` and a
``linear`` one (``Linear`` + ``ReLU``), so a converter reads either the same way. SB3
scales ``uint8`` images by 1/255 before the encoder (``normalize_images``). With an
encoder and no ``net_arch`` given, the heads read the features directly (``net_arch:
[]``), as SB3's ``CnnPolicy`` does: the comparison is encoder against encoder.

:func:`encoder_macs` counts each layer's multiply-accumulates and parameters by hand (no
torch); torch is imported only when :func:`policy_kwargs` builds a model's arguments.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from rlbudget.errors import PlanError

EXTRACTORS = ("depthwise", "depthwise-wide", "nature")


@dataclass(frozen=True)
class DepthwiseArch:
    """The depthwise-separable encoder's shape.

    :param stem_channels: output channels of the stem conv.
    :param stem_kernel: its kernel size (square), also its stride: non-overlapping patches.
    :param blocks: per block, (pointwise output channels, depthwise stride).
    :param features_dim: width of the final linear layer (the features the heads read).
    """

    stem_channels: int = 8
    stem_kernel: int = 4
    blocks: tuple[tuple[int, int], ...] = ((16, 2), (32, 1))
    features_dim: int = 64


DEPTHWISE = {
    "depthwise": DepthwiseArch(),
    "depthwise-wide": DepthwiseArch(16, 4, ((32, 2), (64, 1)), 128),  # twice the channels
}


@dataclass(frozen=True)
class ConvSpec:
    """One conv layer, as counted: ``groups`` = in_channels for a depthwise conv."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int = 1


def _out(size: int, kernel: int, stride: int) -> int:
    """Output size of an unpadded conv."""
    return (size - kernel) // stride + 1


def conv_specs(name: str, in_channels: int) -> tuple[list[ConvSpec], int]:
    """The conv layers of encoder ``name`` and its features width."""
    if name == "nature":
        convs = [ConvSpec("conv1", in_channels, 32, 8, 4), ConvSpec("conv2", 32, 64, 4, 2),
                 ConvSpec("conv3", 64, 64, 3, 1)]  # fmt: skip
        return convs, 512
    a = DEPTHWISE[name]
    convs = [ConvSpec("stem", in_channels, a.stem_channels, a.stem_kernel, a.stem_kernel)]
    c = a.stem_channels
    for i, (out, stride) in enumerate(a.blocks, start=1):
        convs.append(ConvSpec(f"dw{i}", c, c, 3, stride, groups=c))
        convs.append(ConvSpec(f"pw{i}", c, out, 1, 1))
        c = out
    return convs, a.features_dim


@dataclass(frozen=True)
class LayerCount:
    """One layer's output shape, multiply-accumulates per decision and parameters."""

    name: str
    out_shape: tuple[int, ...]
    macs: int
    params: int


def encoder_macs(name: str, obs_shape: tuple[int, int, int]) -> list[LayerCount]:
    """Each layer of encoder ``name`` on a ``(channels, height, width)`` image.

    A conv's MACs are output pixels × output channels × (kernel² × in_channels / groups);
    its parameters the weights plus one bias per output channel.

    >>> [(c.name, c.macs) for c in encoder_macs("nature", (2, 40, 40))][:2]
    [('conv1', 331776), ('conv2', 294912)]
    """
    c, h, w = obs_shape
    counts = []
    convs, features = conv_specs(name, c)
    for s in convs:
        if h < s.kernel or w < s.kernel:
            raise PlanError(
                f"the {name} encoder's layer {s.name} ({s.kernel}×{s.kernel}) does not fit "
                f"the {h}×{w} map it gets from a {obs_shape[1]}×{obs_shape[2]} image; "
                f"use a larger image or features_extractor="
                f"{'depthwise' if name == 'nature' else 'nature'}"
            )
        h, w = _out(h, s.kernel, s.stride), _out(w, s.kernel, s.stride)
        fan_in = s.kernel * s.kernel * s.in_channels // s.groups
        counts.append(LayerCount(s.name, (s.out_channels, h, w), h * w * s.out_channels * fan_in,
                                 s.out_channels * (fan_in + 1)))  # fmt: skip
        c = s.out_channels
    flat = c * h * w
    counts.append(LayerCount("linear", (features,), flat * features, features * (flat + 1)))
    return counts


def check_extractor(value: Any) -> str:
    """``value`` as an encoder name.

    :raises PlanError: not one of :data:`EXTRACTORS`.
    """
    if value not in EXTRACTORS:
        raise PlanError(
            f"hyperparameter features_extractor is '{value}'; use one of "
            f"{', '.join(EXTRACTORS)} (e.g. --hyperparams features_extractor=depthwise)"
        )
    return str(value)


def check_image(name: Any, space: Any, env_id: str) -> None:
    """Refuse encoder ``name`` on an observation ``space`` it cannot read: not a 3-D image
    Box, NatureCNN's not uint8 (SB3 asserts it), or too small for the layers
    (:func:`encoder_macs`, on the image as SB3 gives it: channels first).

    :raises PlanError: one line naming the env and its observation shape.
    """
    name = check_extractor(name)
    shape = tuple(getattr(space, "shape", None) or ())
    dtype = str(getattr(space, "dtype", ""))
    if type(space).__name__ != "Box" or len(shape) != 3 or (name == "nature" and dtype != "uint8"):
        raise PlanError(
            f"features_extractor={name} encodes images ([channels, height, width]"
            f"{', uint8' if name == 'nature' else ''}); environment '{env_id}' observes "
            f"{type(space).__name__} {list(shape)} {dtype}; leave features_extractor out for "
            "it"
        )
    from stable_baselines3.common.preprocessing import (
        is_image_space,
        is_image_space_channels_first,
    )

    if is_image_space(space) and not is_image_space_channels_first(space):
        shape = (shape[2], shape[0], shape[1])  # SB3 transposes it (VecTransposeImage)
    encoder_macs(name, (int(shape[0]), int(shape[1]), int(shape[2])))


@functools.cache
def depthwise_class(name: str = "depthwise") -> type:
    """The depthwise-separable encoder as an SB3 ``BaseFeaturesExtractor`` (built on first
    use: torch and SB3 are imported lazily)."""
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class DepthwiseEncoder(BaseFeaturesExtractor):
        """:class:`DepthwiseArch` on a channels-first image Box."""

        def __init__(self, observation_space: spaces.Box) -> None:
            shape = observation_space.shape
            convs, features = conv_specs(name, int(shape[0]))
            counts = encoder_macs(name, (int(shape[0]), int(shape[1]), int(shape[2])))
            super().__init__(observation_space, features)
            layers: list[torch.nn.Module] = []
            for s in convs:
                layers += [torch.nn.Conv2d(s.in_channels, s.out_channels, s.kernel, s.stride,
                                           groups=s.groups), torch.nn.ReLU()]  # fmt: skip
            self.cnn = torch.nn.Sequential(*layers, torch.nn.Flatten())
            flat = counts[-1].params // features - 1
            self.linear = torch.nn.Sequential(torch.nn.Linear(flat, features), torch.nn.ReLU())

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.linear(self.cnn(observations))
            return out

    return DepthwiseEncoder


def policy_kwargs(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` for encoder ``name``, on top of those ``given`` (the heads
    read the features directly unless ``net_arch`` is given)."""
    from stable_baselines3.common.torch_layers import NatureCNN

    cls = NatureCNN if check_extractor(name) == "nature" else depthwise_class(name)
    return {"net_arch": [], **given, "features_extractor_class": cls}
