"""The discretizer and the tile coder in float32 (issue 16, item 4): numpy, the host C build
and the real-number formula agree on observations on and beside every tile and bin boundary
and at the clamps; the C export holds no ``double`` and its Cortex-M0+ image calls no
software-double routine. The probe policies output the active feature (or state) indices
themselves as float32 actions, so the comparison is of indices, bit for bit."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rlbudget.envs import SpaceSpec
from rlbudget.errors import PolicyError
from rlbudget.export import export_c
from rlbudget.policy import Discretize, Head, Linear, Normalize, Policy, Table, TileCode

GCC = shutil.which("gcc")
ARM_GCC = shutil.which("arm-none-eabi-gcc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
OVERFLOW = "ignore:overflow encountered in divide:RuntimeWarning"
"""numpy's warning when the normalize step divides ±3e38 (the C gives ±inf too)."""
pytestmark = pytest.mark.filterwarnings(OVERFLOW)


def box(n: int) -> SpaceSpec:
    return SpaceSpec("box", (n,), None, (-1.0,) * n, (1.0,) * n, "float32")


def tile_probe(low: list[float], high: list[float], tilings: int, tiles: int,
               hash_size: int | None = None, normalize: bool = False) -> Policy:  # fmt: skip
    """tile_code → linear whose output ``t`` is the active feature of tiling ``t`` (W holds
    each feature's own index in its tiling's column; float32 holds these integers exactly).
    Hashed, tilings share features: output 0 is then the sum of the active features."""
    tc = TileCode(np.array(low), np.array(high), tilings, tiles, hash_size)
    W = np.zeros((tc.features, tilings), dtype=np.float32)
    f = np.arange(tc.features)
    if hash_size:
        W[:, 0] = f
    else:
        W[f, f // tc.per_tiling] = f
    dims = len(low)
    pre: tuple[Normalize | TileCode, ...] = (tc,)
    if normalize:
        pre = (Normalize(np.full(dims, 0.25), np.full(dims, 0.3)), tc)
    body = Linear(W, np.zeros(tilings, dtype=np.float32))
    return Policy(box(dims), box(tilings), pre, body, Head("identity"), {})


def disc_probe(low: list[float], high: list[float], bins: tuple[int, ...]) -> Policy:
    """discretize → table whose one output is the state index itself."""
    disc = Discretize(np.array(low), np.array(high), bins)
    values = np.arange(disc.states, dtype=np.float32)[:, None]
    return Policy(box(len(low)), box(1), (disc,), Table(values), Head("identity"), {})


def boundary_values(low: float, high: float, cells: int) -> np.ndarray:
    """float32 values on, and 1–2 float32 steps either side of, each of the ``cells + 1``
    boundaries of a uniform grid over [low, high], the clamps and beyond (±inf, NaN, ±3e38)."""
    lo, hi = np.float32(low), np.float32(high)
    edges = (lo.astype(np.float64) + (hi - lo) * np.arange(cells + 1) / cells).astype(np.float32)
    up1 = np.nextafter(edges, np.float32(np.inf))
    down1 = np.nextafter(edges, np.float32(-np.inf))
    near = [edges, up1, down1, np.nextafter(up1, np.float32(np.inf)),
            np.nextafter(down1, np.float32(-np.inf))]  # fmt: skip
    beyond = [lo - 1, hi + 1, 0.0, -0.0, np.inf, -np.inf, np.nan, 3e38, -3e38]
    return np.concatenate([*near, np.array(beyond, dtype=np.float32)])


def boundary_obs(low: list[float], high: list[float], cells: list[int]) -> np.ndarray:
    """Every dimension's :func:`boundary_values`, each row pairing them with other dimensions'
    values in two shuffled orders (seeded)."""
    per_dim = [boundary_values(a, b, c) for a, b, c in zip(low, high, cells, strict=True)]
    n = max(len(v) for v in per_dim)
    rng = np.random.default_rng(0)
    blocks = []
    for _ in range(2):
        cols = [rng.permutation(np.resize(v, n)) for v in per_dim]
        blocks.append(np.stack(cols, axis=1))
    return np.concatenate(blocks).astype(np.float32)


TILE_CASES = {
    "mountaincar-8x8": (tile_probe([-1.2, -0.07], [0.6, 0.07], 8, 8), 64),
    "3d-7x5-odd-widths": (tile_probe([-1.0, 0.0, 1e-3], [2.5, 1e-3, 7e3], 7, 5), 35),
    "1d-1x1": (tile_probe([0.0], [1.0], 1, 1), 1),
    "2d-3x10": (tile_probe([-2.4, -3.0], [2.4, 3.0], 3, 10), 30),
    "hashed": (tile_probe([-1.2, -0.07], [0.6, 0.07], 8, 8, hash_size=509), 64),
    "normalized": (tile_probe([-2.0, -2.0], [2.0, 2.0], 5, 6, normalize=True), 30),
}
DISC_CASES = {
    "cartpole-3x5x6x7": (disc_probe([-2.4, -3, -0.21, -3], [2.4, 3, 0.21, 3], (3, 5, 6, 7))),
    "1d-1-bin": (disc_probe([0.5], [0.75], (1,))),
    "2d-odd": (disc_probe([-1e-3, 10.0], [7e-3, 1e4], (10, 13))),
}


def case_obs(policy: Policy) -> np.ndarray:
    step = policy.preprocess[-1]
    assert isinstance(step, TileCode | Discretize)
    low, high = step.low.tolist(), step.high.tolist()
    if isinstance(step, TileCode):
        return boundary_obs(low, high, [step.top] * len(low))
    return boundary_obs(low, high, list(step.bins))


def run_host(policy: Policy, folder: Path, obs: np.ndarray) -> np.ndarray:
    result = export_c(policy, folder)
    program = folder / "probe"
    cmd = ["gcc", *CFLAGS, str(folder / "policy.c"), str(folder / "main.c"), "-o", str(program)]
    build = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert build.returncode == 0 and not result.needs_libm, build.stderr
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in obs) + "\n"
    run = subprocess.run([str(program)], input=text, capture_output=True, text=True, check=True)
    return np.array([[np.float32(v) for v in ln.split()] for ln in run.stdout.splitlines()])


@pytest.mark.skipif(GCC is None, reason="gcc is not installed: the C export is not compiled")
@pytest.mark.parametrize("name", [*TILE_CASES, *DISC_CASES])
def test_host_c_equals_numpy_at_boundaries(name: str, tmp_path: Path) -> None:
    policy = TILE_CASES[name][0] if name in TILE_CASES else DISC_CASES[name]
    obs = case_obs(policy)
    got, want = run_host(policy, tmp_path / "c", obs), policy.act(obs)
    assert got.shape == want.shape and len(obs) >= 38
    assert np.array_equal(got, want), obs[np.any(got != want, axis=1)][:5]


def exact_tiles(tc: TileCode, x: np.ndarray) -> np.ndarray:
    """The real-number tile of each tiling, ``clip(floor((x - low) / width + t / T), 0,
    tiles)`` with ``width = (high - low) / tiles``, in exact rational arithmetic on the
    float32 inputs: ``[dims, tilings]``."""
    out = np.empty((len(x), tc.tilings), dtype=np.int64)
    for d, v in enumerate(x):
        low, high = Fraction(float(tc.low[d])), Fraction(float(tc.high[d]))
        u = (Fraction(float(v)) - low) * tc.tiles_per_dim / (high - low)
        for t in range(tc.tilings):
            out[d, t] = min(max((u + Fraction(t, tc.tilings)).__floor__(), 0), tc.tiles_per_dim)
    return out


@pytest.mark.parametrize("name", ["mountaincar-8x8", "3d-7x5-odd-widths", "2d-3x10"])
def test_float32_tiles_equal_real_numbers_off_the_boundaries(name: str) -> None:
    """float32 only moves an observation within a few float32 steps of a boundary: elsewhere
    (random observations over and beyond [low, high]) every tile equals the exact one."""
    policy, _ = TILE_CASES[name]
    tc = policy.preprocess[0]
    assert isinstance(tc, TileCode)
    span = tc.high - tc.low
    rng = np.random.default_rng(3)
    obs = rng.uniform(tc.low - 0.2 * span, tc.high + 0.2 * span, (400, len(tc.low)))
    obs = obs.astype(np.float32)
    cells = tc.apply(obs)  # [batch, tilings] features
    shape = (tc.tiles_per_dim + 1,) * len(tc.low)
    for x, features in zip(obs, cells, strict=True):
        exact = exact_tiles(tc, x)  # [dims, tilings]
        u = (x.astype(np.float64) - tc.low) / span * tc.top  # in 1/T of a tile
        if np.any(np.abs(u - np.round(u)) < 1e-3):
            continue  # near a boundary: float32 may round either way
        want = [t * tc.per_tiling + np.ravel_multi_index(tuple(exact[:, t]), shape)
                for t in range(tc.tilings)]  # fmt: skip
        assert features.tolist() == want, x


def test_tiles_on_a_boundary_and_one_step_below() -> None:
    """low 0, high 8, 8 tiles, 4 tilings: the scale 4 and 2.75 · 4 = 11 are exact; tiling
    t's tile is floor(2.75 + t / 4) = 2, 3, 3, 3, and one float32 step below 2.75 it is
    floor(2.7499… + t / 4) = 2, 2, 3, 3. Clamps: NaN, −inf and below low → tile 0; high,
    beyond and +inf → tile 8 in every tiling."""
    tc = TileCode(np.array([0.0]), np.array([8.0]), 4, 8)
    below = float(np.nextafter(np.float32(2.75), np.float32(0)))
    x = np.array([[2.75], [below], [np.nan], [-np.inf], [-0.5], [8.0], [9.0], [np.inf]],
                 dtype=np.float32)  # fmt: skip
    tiles = tc.apply(x) - np.arange(4) * tc.per_tiling
    assert tiles.tolist() == [[2, 3, 3, 3], [2, 2, 3, 3], *[[0] * 4] * 3, *[[8] * 4] * 3]


def test_discretizer_bins_and_clamps() -> None:
    """low −1, high 1, 4 bins (scale 2, exact): −0.5 is on the boundary of bins 0 and 1 →
    bin 1; one float32 step below → bin 0; 1.0 and beyond → bin 3; NaN and below → 0."""
    disc = Discretize(np.array([-1.0]), np.array([1.0]), (4,))
    below = float(np.nextafter(np.float32(-0.5), np.float32(-1)))
    x = np.array([[-0.5], [below], [0.0], [1.0], [5.0], [np.nan], [-7.0]], dtype=np.float32)
    assert disc.apply(x).tolist() == [1, 0, 2, 3, 3, 0, 0]


def test_exported_c_has_no_double(tmp_path: Path) -> None:
    for name, policy in [*((n, p) for n, (p, _) in TILE_CASES.items()), *DISC_CASES.items()]:
        folder = tmp_path / name
        export_c(policy, folder)
        for file in ("policy.c", "policy.h"):
            text = (folder / file).read_text()
            assert "double" not in text, (name, file)
    runtime = Path(__file__).resolve().parents[1] / "rlbudget" / "export" / "runtime"
    assert "double" not in (runtime / "state.c").read_text()


def test_export_refuses_a_grid_float32_cannot_hold(tmp_path: Path) -> None:
    """A scale that overflows float32, or 2**24 cells, is one clear error, nothing written."""
    tiny = tile_probe([0.0], [float(np.nextafter(np.float32(0), np.float32(1)))], 4, 4)
    with pytest.raises(PolicyError) as err:
        export_c(tiny, tmp_path / "tiny")  # 16 / 1.4e-45 overflows
    assert str(err.value) == (
        "export_c: tile_code: high - low is too small for a float32 scale (count / (high - "
        "low) overflows); widen [low, high]"
    )
    tc = TileCode(np.array([0.0]), np.array([1.0]), 4096, 4096, hash_size=64)  # 2**24 cells
    huge = Policy(box(1), box(2), (tc,), Linear(np.zeros((64, 2), np.float32),
                  np.zeros(2, np.float32)), Head("identity"), {})  # fmt: skip
    with pytest.raises(PolicyError) as err:
        export_c(huge, tmp_path / "huge")
    assert str(err.value) == ("export_c: tile_code: 16,777,216 cells per dimension; the C "
                              "export supports fewer than 16,777,216")  # fmt: skip
    assert not (tmp_path / "tiny").exists() and not (tmp_path / "huge").exists()


@pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc is not installed")
def test_m0plus_image_calls_no_soft_double(tmp_path: Path) -> None:
    """Linked for the Cortex-M0+ (software float, --gc-sections): the tile coder and the
    discretizer pull in no ``__aeabi_d*`` routine (only float32 ones, ``__aeabi_f*``)."""
    from rlbudget.emulate.image import build_image, read_elf

    for name, policy in [("tiles", TILE_CASES["2d-3x10"][0]),
                         ("normalized", TILE_CASES["normalized"][0]),
                         ("disc", DISC_CASES["cartpole-3x5x6x7"])]:  # fmt: skip
        export_c(policy, tmp_path / name)
        (tmp_path / f"{name}-img").mkdir()
        elf = build_image(tmp_path / name, "cortex-m0plus", tmp_path / f"{name}-img")
        symbols = read_elf(elf).symbols
        assert not [s for s in symbols if s.startswith("__aeabi_d")], name
        assert any(s.startswith("__aeabi_f") for s in symbols), name  # the check can fail
