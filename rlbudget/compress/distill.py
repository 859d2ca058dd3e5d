"""Distillation (DAgger) of any float or int8 teacher into a small float MLP, and recovery.

DAgger (Ross, Gordon & Bagnell 2011): iteration 0 runs the teacher and records the states
it visits; every later iteration runs the current student (with probability ``β_i =
beta_decay ** i`` the teacher acts instead, so the mixture drifts from teacher to student),
the teacher labels every visited state, the labelled states join one growing dataset, and
the student is trained on all of it. The student thus learns what to do in the states *it*
reaches, not only those the teacher reaches, which is what plain behaviour cloning misses.

- :func:`distill`: a fresh student ``mlp`` with the given hidden widths.
- :func:`recover`: the same loop starting from an existing float32 ``mlp`` (a pruned
  policy); with ``keep_zeros`` its zero weights stay exactly zero, so a magnitude-pruned
  policy keeps its sparsity.
- :func:`widths_for_budget`: the widest equal-width student that fits a budget, sized as
  the cost model (:mod:`rlbudget.costs`) sizes MLPs.

Targets. Discrete actions: cross-entropy on the teacher's action (``teacher.act``), so any
argmax teacher works (policy logits, Q-values, int8). Continuous actions: mean squared
error on the teacher's body output, the value *before* the head squashes or clips it
(SAC's pre-tanh mean, TD3's pre-tanh output), which keeps gradients alive where the head
saturates; the student reuses the teacher's head, so equal body outputs mean equal actions.

The student sees the teacher's float preprocess (``normalize``, ``one_hot``). A tile-coded
or discretized teacher's index features are replaced by a ``normalize`` step mapping the
coder's ``[low, high]`` box to ``[-1, 1]`` (a small MLP trains badly on raw, unscaled
observations, and the box is what the teacher itself was built on).

torch does the optimisation (imported here, inside the functions); it runs on
``Dagger.threads`` CPU threads (restored afterwards), seeded, so one seed gives a
bit-identical student. The result is a numpy :class:`~rlbudget.policy.model.Policy`; its
weights are the torch float32 parameters, transposed to the ``x @ W + b`` convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rlbudget.budget import Budget
from rlbudget.compress import with_transform
from rlbudget.costs import mlp_body
from rlbudget.envs import make_env, space_mismatch
from rlbudget.errors import PolicyError
from rlbudget.limits import FAIL, check, format_figure
from rlbudget.policy.model import (
    MLP,
    Array,
    Dense,
    Discretize,
    Linear,
    Normalize,
    OneHot,
    Policy,
    Preprocess,
    QuantizedMLP,
    TileCode,
)

__all__ = ["DISTILL", "RECOVER", "WIDTHS", "Dagger", "distill", "recover", "widths_for_budget"]

MAX_WIDTH = 4096
"""The widest student layer :func:`distill` builds (a student is meant to be small)."""


@dataclass(frozen=True)
class Dagger:
    """Hyperparameters of the DAgger loop.

    :param steps: env steps collected per iteration (every one labelled by the teacher).
    :param beta_decay: in iteration ``i`` the teacher acts with probability
        ``beta_decay ** i`` (iteration 0: the teacher only; 0.0: the student from iteration 1).
    :param updates: Adam steps on the aggregated dataset after each iteration's collection.
    :param batch_size: states per Adam step, drawn uniformly from the whole dataset.
    :param lr: Adam's learning rate.
    :param threads: torch CPU threads (small nets train fastest on one).
    """

    steps: int = 1000
    beta_decay: float = 0.5
    updates: int = 400
    batch_size: int = 256
    lr: float = 1e-2
    threads: int = 1


DISTILL = Dagger()
"""Defaults for :func:`distill`: 8 iterations × 1000 states take ≈1.5 s on one core, and PPO
CartPole 64-64 → 8-8 (or 4-4) keeps its return of 500 (``tests/test_distill.py``)."""
RECOVER = Dagger(lr=2e-3)
"""Defaults for :func:`recover`: a smaller step, the student starts close to the teacher."""
WIDTHS = (4, 8, 16, 32, 64, 128, 256)
"""Hidden widths :func:`widths_for_budget` chooses from."""


# --- the teacher and the student's shape --------------------------------------------------


def _check_teacher(teacher: Policy, what: str) -> None:
    if not isinstance(teacher.body, MLP | QuantizedMLP | Linear):
        raise PolicyError(
            f"{what} applies to mlp, mlp_int8 and linear policies; this teacher has a "
            f"{teacher.body.kind} body (a table policy is compressed with pack / drop-unvisited)"
        )


def _hidden(teacher: Policy) -> tuple[list[int], str]:
    """The teacher's hidden widths and hidden activation (a linear teacher: none, relu)."""
    body = teacher.body
    if isinstance(body, MLP | QuantizedMLP):
        return [int(la.W.shape[1]) for la in body.layers[:-1]], body.layers[0].activation
    return [], "relu"


def _student_preprocess(teacher: Policy) -> tuple[Preprocess, ...]:
    """The teacher's float preprocess; index features become a box normalization."""
    out: list[Preprocess] = []
    for step in teacher.preprocess:
        if isinstance(step, Normalize | OneHot):
            out.append(step)
        elif isinstance(step, TileCode | Discretize):
            half = (step.high - step.low) * np.float32(0.5)
            out.append(Normalize(step.low + half, half * half))
    one_hot = any(isinstance(p, OneHot) for p in out)
    if teacher.observation_space.kind == "discrete" and not one_hot:
        out.append(OneHot(int(teacher.observation_space.n or 0)))
    return tuple(out)


def _features(preprocess: Sequence[Preprocess], obs: Array) -> Array:
    x = obs
    for step in preprocess:
        x = step.apply(x)
    out: Array = np.asarray(x, dtype=np.float32)
    return out


def _outputs(teacher: Policy) -> int:
    if teacher.action_space.kind == "discrete":
        return int(teacher.action_space.n or 0)
    return teacher.action_space.dim


def _labels(teacher: Policy, obs: Array) -> Array:
    """Discrete: the teacher's actions (int64). Continuous: its body output (float32)."""
    if teacher.action_space.kind == "discrete":
        return np.asarray(teacher.act(obs), dtype=np.int64)
    x = obs
    for step in teacher.preprocess:
        x = step.apply(x)
    out: Array = np.asarray(teacher.body.apply(x), dtype=np.float32)
    return out


# --- the DAgger loop ----------------------------------------------------------------------


def _collect(
    env: Any, teacher: Policy, student: Policy, beta: float, steps: int, seed: int,
    rng: np.random.Generator,
) -> Array:  # fmt: skip
    """``steps`` states visited while the teacher (probability ``beta``) or the student acts."""
    states = []
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        states.append(obs)
        actor = teacher if rng.random() < beta else student
        obs, _, terminated, truncated, _ = env.step(actor.act(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(states)


def _check_spaces(env: Any, env_id: str, teacher: Policy) -> None:
    problem = space_mismatch(env, env_id, teacher.observation_space, teacher.action_space,
                             "the teacher's")  # fmt: skip
    if problem:
        raise PolicyError(f"{problem}; distill on the env the teacher was trained on")


def _dagger(
    teacher: Policy,
    template: Policy,
    env_id: str,
    *,
    seed: int,
    iterations: int,
    cfg: Dagger,
    keep_zeros: bool,
    gym_packages: Sequence[str],
) -> tuple[Policy, int]:
    """Train ``template``'s ``mlp`` body by DAgger; returns the student and the dataset size.

    ``template.body`` is the starting point (fresh torch-initialised layers for
    :func:`distill`, the pruned policy for :func:`recover`); with ``keep_zeros`` its
    exactly-zero weights are masked out of every gradient and re-zeroed after every step.
    """
    import torch

    if iterations < 1:
        raise PolicyError(f"iterations {iterations} must be ≥ 1 (DAgger's first iteration "
                          "collects the teacher's own states)")  # fmt: skip
    assert isinstance(template.body, MLP)
    discrete = teacher.action_space.kind == "discrete"
    rng = np.random.default_rng(seed)
    threads = torch.get_num_threads()
    env = make_env(env_id, gym_packages=gym_packages)
    try:
        _check_spaces(env, env_id, teacher)
        torch.set_num_threads(cfg.threads)
        weights = [torch.tensor(la.W.T.copy(), requires_grad=True) for la in template.body.layers]
        biases = [torch.tensor(la.b.copy(), requires_grad=True) for la in template.body.layers]
        masks = [w.detach() != 0 for w in weights] if keep_zeros else None
        activations = [la.activation for la in template.body.layers]
        optimizer = torch.optim.Adam([*weights, *biases], lr=cfg.lr)

        def forward(x: Any) -> Any:
            for w, b, act in zip(weights, biases, activations, strict=True):
                x = torch.nn.functional.linear(x, w, b)
                if act != "identity":
                    x = getattr(torch, act)(x)  # torch.relu / tanh / sigmoid, as the numpy MLP
            return x

        def current() -> Policy:
            layers = tuple(
                Dense(w.detach().numpy().T.copy(), b.detach().numpy().copy(), act)
                for w, b, act in zip(weights, biases, activations, strict=True)
            )
            return replace(template, body=MLP(layers))

        features: list[Array] = []
        labels: list[Array] = []
        student = template
        for i in range(iterations):
            beta = cfg.beta_decay**i if i else 1.0
            obs = _collect(env, teacher, student, beta, cfg.steps, seed + i, rng)
            features.append(_features(template.preprocess, obs))
            labels.append(_labels(teacher, obs))
            x = torch.from_numpy(np.concatenate(features))
            y = torch.from_numpy(np.concatenate(labels))
            for _ in range(cfg.updates):
                idx = torch.from_numpy(rng.integers(0, len(x), cfg.batch_size))
                out = forward(x[idx])
                loss: Any
                if discrete:
                    loss = torch.nn.functional.cross_entropy(out, y[idx])
                else:
                    loss = torch.nn.functional.mse_loss(out, y[idx])
                optimizer.zero_grad()
                loss.backward()
                if masks is not None:
                    for w, m in zip(weights, masks, strict=True):
                        assert w.grad is not None
                        w.grad.masked_fill_(~m, 0.0)
                optimizer.step()
                if masks is not None:
                    with torch.no_grad():
                        for w, m in zip(weights, masks, strict=True):
                            w.masked_fill_(~m, 0.0)
            student = current()
        return student, len(x)
    finally:
        env.close()
        torch.set_num_threads(threads)


def _fresh_layers(sizes: Sequence[int], activation: str, seed: int) -> tuple[Dense, ...]:
    """torch's default ``nn.Linear`` initialisation (Kaiming-uniform), seeded, as Dense."""
    import torch

    torch.manual_seed(seed)
    layers = []
    for i in range(len(sizes) - 1):
        lin = torch.nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        layers.append(Dense(lin.weight.detach().numpy().T.copy(),
                            lin.bias.detach().numpy().copy(),
                            "identity" if last else activation))  # fmt: skip
    return tuple(layers)


# --- public -------------------------------------------------------------------------------


def distill(
    teacher: Policy,
    env_id: str,
    *,
    widths: Sequence[int],
    seed: int = 0,
    iterations: int = 8,
    gym_packages: Sequence[str] = (),
    dagger: Dagger = DISTILL,
) -> Policy:
    """A fresh student ``mlp`` with hidden ``widths``, trained by DAgger on ``teacher``.

    The student has the teacher's float preprocess, its hidden activation (relu for a
    linear teacher) and its head; it is returned with a ``distill`` transform (widths,
    iterations, seed, labelled states) in its provenance.

    :param teacher: an ``mlp``, ``mlp_int8`` or ``linear`` policy.
    :param env_id: the env to collect states in (the teacher's).
    :param widths: hidden layer widths of the student, e.g. ``(8, 8)``.
    :param iterations: DAgger iterations (iteration 0: the teacher acts).
    :param dagger: steps per iteration, Adam steps, learning rate, β schedule.
    :raises PolicyError: a table teacher, bad widths, or an env whose spaces differ.
    """
    _check_teacher(teacher, "distill")
    hidden = [int(w) for w in widths]
    if not hidden or any(w < 1 for w in hidden) or any(w > MAX_WIDTH for w in hidden):
        raise PolicyError(
            f"distill: widths {list(widths)} must be one or more hidden layer widths from 1 to "
            f"{MAX_WIDTH}, e.g. 8,8"
        )
    preprocess = _student_preprocess(teacher)
    inputs = int(_features(preprocess, _sample_obs(teacher)).shape[1])
    _, activation = _hidden(teacher)
    layers = _fresh_layers([inputs, *hidden, _outputs(teacher)], activation, seed)
    template = Policy(teacher.observation_space, teacher.action_space, preprocess,
                      MLP(layers), teacher.head)  # fmt: skip
    student, states = _dagger(teacher, template, env_id, seed=seed, iterations=iterations,
                              cfg=dagger, keep_zeros=False, gym_packages=gym_packages)  # fmt: skip
    return with_transform(teacher, student, "distill", widths=hidden, iterations=iterations,
                          seed=seed, states=states)  # fmt: skip


def recover(
    student: Policy,
    teacher: Policy,
    env_id: str,
    *,
    seed: int = 0,
    iterations: int = 4,
    keep_zeros: bool = True,
    gym_packages: Sequence[str] = (),
    dagger: Dagger = RECOVER,
) -> Policy:
    """``student`` (a float32 ``mlp``, e.g. pruned) fine-tuned by DAgger from ``teacher``.

    The student keeps its preprocess, shape, activations and head. With ``keep_zeros``
    every weight (``W`` entry) that is exactly 0 stays exactly 0: its gradient is masked
    and it is re-zeroed after each Adam step, so an unstructured-pruned policy keeps its
    sparsity and its CSR storage. Biases are always trained.

    :raises PolicyError: a student that is not a float32 ``mlp``, a table teacher, or
        a student and teacher with different spaces.
    """
    _check_teacher(teacher, "recover")
    body = student.body
    if not isinstance(body, MLP) or body.half:
        kind = "float16 mlp" if isinstance(body, MLP) else body.kind
        raise PolicyError(
            f"recover fine-tunes a float32 mlp student; this one has a {kind} body "
            "(recover before fp16 or int8, then convert)"
        )
    if (student.observation_space, student.action_space) != (
        teacher.observation_space, teacher.action_space
    ):  # fmt: skip
        raise PolicyError(
            "recover: the student and the teacher have different observation or action "
            "spaces; recover a policy from its own unpruned parent"
        )
    recovered, states = _dagger(teacher, student, env_id, seed=seed, iterations=iterations,
                                cfg=dagger, keep_zeros=keep_zeros,
                                gym_packages=gym_packages)  # fmt: skip
    return with_transform(student, recovered, "recover", iterations=iterations, seed=seed,
                          keep_zeros=keep_zeros, states=states)  # fmt: skip


def widths_for_budget(
    teacher: Policy, budget: Budget, *, bytes_per_weight: int = 4
) -> tuple[int, ...]:
    """The widest equal hidden widths from :data:`WIDTHS` whose student fits ``budget``.

    Same depth as the teacher (a linear teacher: two hidden layers, as plan's MLPs), never
    wider than the teacher's widest hidden layer. Sized by the cost model
    (:func:`rlbudget.costs.mlp_body`): flash = (weights + biases) × ``bytes_per_weight``
    (the body alone: no code, no preprocess constants); RAM = the largest pair of live
    activations plus one layer's int32 accumulators (1 B activations when
    ``bytes_per_weight`` is 1, i.e. int8, else 4 B). Each must pass ``estimate × (1 +
    budget.margin) ≤ limit`` against the device's flash and SRAM and the budget's
    ``inference.flash``/``inference.ram`` where set.

    :raises PolicyError: a table teacher, or no width fits (naming the limit even the
        narrowest student exceeds).
    """
    _check_teacher(teacher, "distill")
    hidden, activation = _hidden(teacher)
    depth = len(hidden) or 2
    cap = max(hidden, default=WIDTHS[-1])
    dtype = "int8" if bytes_per_weight == 1 else "fp32"
    obs, act = teacher.observation_space, teacher.action_space
    inf, device, m = budget.inference, budget.device, budget.margin
    failure = None
    for width in sorted((w for w in WIDTHS if w <= cap), reverse=True):
        body = mlp_body(obs, act, [width] * depth, activation, dtype, device.fpu)
        flash, ram = body.parameters * bytes_per_weight, body.activation_bytes
        checks = (
            check("device.flash", flash, device.flash_bytes, m),
            check("inference.flash", flash, inf.flash_bytes, m),
            check("device.ram", ram, device.sram_bytes, m),
            check("inference.ram", ram, inf.ram_bytes, m),
        )
        failure = next((c for c in checks if c.status == FAIL), None)
        if failure is None:
            return (width,) * depth
    shape = "-".join([str(min(WIDTHS))] * depth)
    if failure is None:
        raise PolicyError(f"the teacher's hidden layers ({hidden}) are narrower than "
                          f"{min(WIDTHS)}; distill with explicit widths")  # fmt: skip
    raise PolicyError(
        f"no student fits budget '{budget.name}': even {shape} needs "
        f"{format_figure(failure.figure, 'B')} ({format_figure(failure.with_margin, 'B')} with "
        f"the {m:.0%} margin) over the {failure.limit} limit of "
        f"{format_figure(failure.limit_value, 'B')}; raise the limit or use a linear or table "
        "policy"
    )


def _sample_obs(policy: Policy) -> Array:
    """One valid observation (a batch of one): zeros, or state 0."""
    space = policy.observation_space
    if space.kind == "discrete":
        return np.zeros(1, dtype=np.int64)
    return np.zeros((1, *space.shape), dtype=np.float32)
