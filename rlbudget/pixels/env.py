"""CartPole seen through a camera: gymnasium's CartPole-v1 drawn into a small grayscale
image in numpy, registered as ``PixelCartPole-v0`` when this module is imported: name it
``rlbudget.pixels.env:PixelCartPole-v0`` (``--env`` or a budget's ``task.env``).

The observation is ``uint8[2, 40, 40]``, channels first: the frame after the last step and
the one before it (a single frame shows where the cart and pole are, two show how they
move). Dynamics, reward, termination and the 500-step limit are CartPole-v1's own: the
env steps a ``CartPoleEnv`` and draws its state.

**Why 40 × 40, two frames.** SB3's ``NatureCNN`` (8×8 stride 4, 4×4 stride 2, 3×3
stride 1) needs at least 36 × 36; 40 × 40 leaves it a 1 × 1 map and keeps a frame at
1,600 bytes, so PPO trains in minutes on a shared 2-core machine. Two frames are the
fewest that make the velocities observable. An installable pixel env was the first
choice: MinAtar 1.0.15 (PyPI) registers gymnasium ids, but its 10 × 10 grids are too
small for NatureCNN and its games need millions of frames (the MinAtar paper trains
5M), out of reach here.

**What is drawn.** The track spans the image width for x in [-2.4, 2.4] (CartPole's
termination bounds), the cart is a 6 × 3 pixel box on row 33, the pole a 2-pixel-wide
segment of 24 pixels from the cart's top at the pole's angle. The pole is drawn longer
than to scale (CartPole's is 1 m on a 4.8 m track, i.e. 8 pixels here) so that the
angle, which decides the episode, moves its tip by pixels rather than fractions of one.
Edges are anti-aliased: a pixel's value is 255 × its coverage, estimated from its
centre's distance to the shape, so sub-pixel motion changes the image.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from rlbudget.policy.kernels import Array

SIZE = 40  # image height and width, pixels
FRAMES = 2  # stacked frames: the newest first
X_LIMIT = 2.4  # CartPole-v1's x_threshold: the track drawn edge to edge
CART_ROW = 33  # the cart's centre row
CART_HALF = (3.0, 1.5)  # half-width, half-height of the cart, pixels
POLE_LENGTH = 24.0  # pixels, from the cart's top
POLE_HALF_WIDTH = 1.0


def _coverage(distance: Array) -> Array:
    """A pixel's share inside a shape from its centre's signed distance to the edge
    (negative inside): 1 inside by half a pixel or more, 0 outside by as much, linear
    between."""
    return np.clip(0.5 - distance, 0.0, 1.0)


@functools.cache
def _grid(size: int) -> tuple[Array, Array]:
    """Pixel centres: (row, column) coordinates, each ``float32[size, size]``."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    return rows, cols


def draw(x: float, theta: float, size: int = SIZE) -> Array:
    """One frame of the cart at ``x`` (m) with the pole at ``theta`` (rad, 0 upright,
    positive to the right), as ``uint8[size, size]``.

    >>> frame = draw(0.0, 0.0)
    >>> int(frame[CART_ROW, SIZE // 2]), int(frame[5, 5])
    (255, 0)
    """
    rows, cols = _grid(size)
    cx = (x + X_LIMIT) / (2 * X_LIMIT) * size
    cy = CART_ROW + 0.5
    # cart: box distance (Chebyshev-like, exact enough for a 6 × 3 box)
    box = np.maximum(np.abs(cols - cx) - CART_HALF[0], np.abs(rows - cy) - CART_HALF[1])
    # pole: distance to the segment from the cart's top to the tip
    top = np.array([cy - CART_HALF[1], cx])
    tip = top + POLE_LENGTH * np.array([-np.cos(theta), np.sin(theta)])
    d = tip - top
    t = np.clip(((rows - top[0]) * d[0] + (cols - top[1]) * d[1]) / float(d @ d), 0.0, 1.0)
    seg = np.hypot(rows - (top[0] + t * d[0]), cols - (top[1] + t * d[1])) - POLE_HALF_WIDTH
    cover = np.maximum(_coverage(box), _coverage(seg))
    frame: Array = np.round(cover * 255.0).astype(np.uint8)
    return frame


class PixelCartPoleEnv(gym.Env[Array, np.int64]):
    """CartPole-v1 whose observation is its last two frames (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012 (gymnasium's)

    def __init__(self, render_mode: str | None = None) -> None:
        self.cartpole = CartPoleEnv()
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (FRAMES, SIZE, SIZE), np.uint8)
        self.action_space = gym.spaces.Discrete(2)  # CartPole's: push left, push right
        self._frames = np.zeros((FRAMES, SIZE, SIZE), np.uint8)

    def _observe(self, state: Array) -> Array:
        self._frames[1:] = self._frames[:-1]
        self._frames[0] = draw(float(state[0]), float(state[2]))
        frames: Array = self._frames.copy()
        return frames

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Array, dict[str, Any]]:
        super().reset(seed=seed)
        # CartPole draws its start state from its own generator: seed it from ours.
        state, info = self.cartpole.reset(seed=int(self.np_random.integers(2**31)))
        frame = draw(float(state[0]), float(state[2]))
        self._frames[:] = frame  # no motion seen yet: both frames the same
        return self._frames.copy(), info

    def step(self, action: np.int64) -> tuple[Array, float, bool, bool, dict[str, Any]]:
        state, reward, terminated, truncated, info = self.cartpole.step(action)  # type: ignore[no-untyped-call]
        return self._observe(state), float(reward), terminated, truncated, info

    def render(self) -> Array:
        """The newest frame as RGB (``uint8[size, size, 3]``)."""
        return np.repeat(self._frames[0][:, :, None], 3, axis=2)


if "PixelCartPole-v0" not in gym.registry:
    gym.register(
        "PixelCartPole-v0",
        entry_point="rlbudget.pixels.env:PixelCartPoleEnv",
        max_episode_steps=500,
        reward_threshold=475.0,
    )
