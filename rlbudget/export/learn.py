"""An exported policy that keeps learning on the device: ``export --format c --learn``.

The folder holds what :func:`~rlbudget.export.c.export_c` writes (``policy.h``,
``policy.c``, ``main.c``) plus ``learn.h``; ``policy.c`` then keeps the values (table or
tile-coded weights) in RAM, initialised from the shipped ones in flash, and adds::

    int rlb_policy_act(const float *obs, float *action);   /* greedy, learned values */
    int rlb_policy_act_explore(const float *obs);           /* epsilon-greedy */
    int rlb_policy_learn(const float *obs, int action, float reward,
                         const float *next_obs, int done);  /* returns the next action */
    void rlb_policy_end_episode(void);                      /* truncation: clear traces */
    void rlb_policy_reset(void);                            /* back to the shipped policy */
    const void *rlb_policy_state(uint32_t *bytes);          /* the state, for a dump */

All state (header, values, traces, RNG) is one static struct; no malloc, C99. The
arithmetic, ``float32`` or saturating ``q16.16``, and the layout of the state are
:mod:`rlbudget.agents.learner`'s, whose :class:`~rlbudget.agents.learner.Learner` computes
the same bits in numpy (``tests/test_learn_export.py`` compares them after every step).
Float operations are one per statement, so no contraction (FMA) or excess precision can
change a result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rlbudget.agents.learner import (
    DTYPES,
    HEADER_WORDS,
    LIMIT,
    MAGIC,
    ONE,
    VERSION,
    Learner,
    LearnParams,
)
from rlbudget.errors import PolicyError
from rlbudget.export.c import (
    HARNESS,
    HARNESS_TEXT,
    SOURCE,
    ExportResult,
    input_function,
    split_preprocess,
    state_function,
    tile_coding,
)
from rlbudget.export.c_source import HEADER, CWriter, c_float, origin, policy_h
from rlbudget.export.kernels import CONST_MACRO
from rlbudget.policy.model import Policy, TileCode

LEARN_HEADER = "learn.h"


def learner_dtype(fpu: bool) -> str:
    """The learner's number format on a core: float32 with an FPU, else Q16.16."""
    return "float32" if fpu else "q16.16"


@dataclass(frozen=True)
class LearnerSize:
    """RAM and flash the learner adds, and what it holds."""

    ram_bytes: int  # the state struct: header, values, traces
    flash_bytes: int  # the shipped values, kept for reset
    values: int
    traces: int

    def to_dict(self) -> dict[str, Any]:
        return {"ram_bytes": self.ram_bytes, "flash_bytes": self.flash_bytes,
                "values": self.values, "traces": self.traces}  # fmt: skip


def learner_size(policy: Policy) -> LearnerSize:
    """What the learner of ``policy`` holds (4 bytes a value in either format)."""
    from rlbudget.agents.learner import shipped_values

    kind, values = shipped_values(policy)
    traces = values.size if kind == "tiles" else 0
    ram = 4 * (HEADER_WORDS + values.size + traces)
    return LearnerSize(ram, 4 * values.size, int(values.size), int(traces))


# --- the C text -------------------------------------------------------------------------------

FIXED_OPS = """/* Q16.16, saturating (rlbudget.agents.learner) */
static int32_t rlb_sat(int64_t x)
{
    return x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : (int32_t)x);
}
static int32_t rlb_add(int32_t a, int32_t b)
{
    return rlb_sat((int64_t)a + b);
}
static int32_t rlb_sub(int32_t a, int32_t b)
{
    return rlb_sat((int64_t)a - b);
}
static int32_t rlb_mul(int32_t a, int32_t b)
{
    return rlb_sat(((int64_t)a * b) >> 16); /* arithmetic shift: floor */
}
/* a float (the reward) as Q16.16: sat(trunc(x * 65536)), NaN -> 0 */
static int32_t rlb_value(float x)
{
    const float v = x * 65536.0f;
    if (!(v == v)) {
        return 0;
    }
    if (v >= 2147483648.0f) {
        return INT32_MAX;
    }
    if (v <= -2147483648.0f) {
        return INT32_MIN;
    }
    return (int32_t)v;
}
#define rlb_clamp(v) (v)"""

LIM = c_float(LIMIT)
FLOAT_OPS = f"""/* float32, one operation per function: no contraction (rlbudget.agents.learner) */
static float rlb_add(float a, float b)
{{
    return a + b;
}}
static float rlb_sub(float a, float b)
{{
    return a - b;
}}
static float rlb_mul(float a, float b)
{{
    return a * b;
}}
/* values stay within +-{c_float(LIMIT)}: sums of them cannot overflow */
static float rlb_clamp(float v)
{{
    return v > {LIM} ? {LIM} : (v < -{LIM} ? -{LIM} : v);
}}
/* a float (the reward) as a value: NaN -> 0, clamped */
static float rlb_value(float x)
{{
    if (!(x == x)) {{
        return 0.0f;
    }}
    return rlb_clamp(x);
}}"""


def _features(w: CWriter, tc: TileCode) -> None:
    """``rlb_features(obs, f)``: the active feature of each tiling, as ``TileCode.apply``
    (the C export's tile coding, :func:`rlbudget.export.c.tile_coding`)."""
    dims = len(tc.low)
    loops = tile_coding(w, tc, "    out[t] = f;", "    ")
    w.helper(
        "rlb_features",
        f"""/* tile coding in float32, then integers (TileCode.apply) */
static void rlb_features(const float *obs, int32_t *out)
{{
    int32_t d, t, f, q[{dims}], r[{dims}];
{loops}
}}""",
    )


def _learner_code(lr: Learner, tilings: int) -> str:
    """The state struct and the learner's functions, for table or tile-coded values."""
    fixed, n = lr.ar.fixed, lr.n_actions
    v = "int32_t" if fixed else "float"
    n_values = lr.values.size
    n_traces = 0 if lr.traces is None else lr.traces.size

    def const(x: Any) -> str:
        return str(int(x)) if fixed else c_float(float(x))

    traces = f"\n    {v} traces[{n_traces}]; /* eligibility traces */" if n_traces else ""
    zero_traces = (f"\n    for (i = 0; i < {n_traces}; ++i) {{\n        rlb_l.traces[i] = "
                   f"{const(0)};\n    }}") if n_traces else ""  # fmt: skip
    header = [MAGIC, VERSION, DTYPES.index(lr.ar.dtype), lr.fingerprint, n_values, n_traces]
    header_set = "\n".join(f"    rlb_l.header[{i}] = UINT32_C({h});" for i, h in
                           enumerate(header[1:], start=1))  # fmt: skip
    if lr.eps > 0:
        explore = (
            f"    if (rlb_next() < UINT32_C({lr.eps})) {{ /* epsilon = "
            f"{lr.params.epsilon:g} */\n        return (int)(rlb_next() % {n}u);\n    }}"
        )
    else:
        explore = "    (void)rlb_next(); /* epsilon = 0: the draw is kept, as numpy */"
    table = lr.kind == "table"
    at_decl = "int32_t s" if table else "const int32_t *f"
    greedy = f"rlb_best(rlb_l.values + s * {n})" if table else "rlb_best_tiles(f)"
    text = f"""/* --- the learner's state (RAM), also the dump: 32-bit little-endian words --- */
struct rlb_learner {{
    uint32_t header[{HEADER_WORDS}]; /* magic "RLBL", version, dtype (0 float32, 1 q16.16),
                            fingerprint, values, traces, learn calls, RNG */
    {v} values[{n_values}]; /* row-major [{"state" if table else "feature"}][action] */{traces}
}};
static struct rlb_learner rlb_l;

void rlb_policy_reset(void)
{{
    int32_t i;
{header_set}
    rlb_l.header[6] = 0u;
    rlb_l.header[7] = UINT32_C({lr.rng}); /* xorshift32 seed */
    for (i = 0; i < {n_values}; ++i) {{
        rlb_l.values[i] = rlb_shipped[i];
    }}{zero_traces}
    rlb_l.header[0] = UINT32_C({MAGIC});
}}

static void rlb_ready(void)
{{
    if (rlb_l.header[0] != UINT32_C({MAGIC})) {{
        rlb_policy_reset();
    }}
}}

/* xorshift32 (Marsaglia 2003) */
static uint32_t rlb_next(void)
{{
    uint32_t x = rlb_l.header[7];
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rlb_l.header[7] = x;
    return x;
}}

/* the first largest of {n} values (numpy's argmax) */
static int rlb_best(const {v} *y)
{{
    int32_t i, best = 0;
    for (i = 1; i < {n}; ++i) {{
        if (y[i] > y[best]) {{
            best = i;
        }}
    }}
    return (int)best;
}}
"""
    if not table:
        if fixed:
            q1 = f"""    int64_t acc = 0;
    for (t = 0; t < {tilings}; ++t) {{
        acc += rlb_l.values[f[t] * {n} + a];
    }}
    return rlb_sat(acc);"""
        else:
            q1 = f"""    float acc = 0.0f;
    for (t = 0; t < {tilings}; ++t) {{
        acc = acc + rlb_l.values[f[t] * {n} + a];
    }}
    return acc;"""
        text += f"""
/* Q(s, a): the weights of the active tiles, summed tiling by tiling */
static {v} rlb_q1(const int32_t *f, int32_t a)
{{
    int32_t t;
{q1}
}}

static int rlb_best_tiles(const int32_t *f)
{{
    int32_t a;
    {v} y[{n}];
    for (a = 0; a < {n}; ++a) {{
        y[a] = rlb_q1(f, a);
    }}
    return rlb_best(y);
}}
"""
    text += f"""
static int rlb_explore({at_decl})
{{
{explore}
    return {greedy};
}}
"""
    return text


def _entry_points(lr: Learner, tilings: int) -> str:
    fixed, n = lr.ar.fixed, lr.n_actions
    v = "int32_t" if fixed else "float"
    n_values = lr.values.size
    a, g, gl = (int(x) if fixed else c_float(float(x))
                for x in (lr.rates.alpha, lr.rates.gamma, lr.rates.gamma_lambda))  # fmt: skip
    one = str(ONE) if fixed else "1.0f"
    p = lr.params
    head = (
        "int rlb_policy_learn(const float *obs, int action, float reward,\n"
        "                     const float *next_obs, int done)\n{"
    )
    count = """    if (rlb_l.header[6] != UINT32_MAX) {
        ++rlb_l.header[6];
    }"""
    if lr.kind == "table":
        q2 = (f"rlb_l.values[s2 * {n}]; /* Q-learning: max over next actions */\n"
              f"        for (i = 1; i < {n}; ++i) {{\n            if (rlb_l.values[s2 * {n} + i] "
              f"> q2) {{\n                q2 = rlb_l.values[s2 * {n} + i];\n            }}\n"
              "        }") if p.algorithm == "q-learning" else (
            f"rlb_l.values[s2 * {n} + a2]; /* SARSA */")  # fmt: skip
        learn = f"""{head}
    int32_t s, s2, i;
    int a2;
    {v} q_sa, q2, target, delta;
    rlb_ready();
    s = rlb_state(obs);
    s2 = rlb_state(next_obs);
    a2 = rlb_explore(s2);
    if (action < 0 || action >= {n}) {{
        return a2;
    }}
{count}
    q_sa = rlb_l.values[s * {n} + action];
    target = rlb_value(reward);
    if (!done) {{
        q2 = {q2}
        target = rlb_add(target, rlb_mul({g}, q2)); /* gamma */
    }}
    (void)i;
    delta = rlb_sub(target, q_sa);
    rlb_l.values[s * {n} + action] = rlb_clamp(rlb_add(q_sa, rlb_mul({a}, delta))); /* alpha */
    return a2;
}}"""
        where = "    int32_t s;\n    rlb_ready();\n    s = rlb_state(obs);"
        act, exp = f"rlb_best(rlb_l.values + s * {n})", "rlb_explore(s)"
        end = "void rlb_policy_end_episode(void)\n{\n}"
    else:
        where = f"    int32_t f[{tilings}];\n    rlb_ready();\n    rlb_features(obs, f);"
        act, exp = "rlb_best_tiles(f)", "rlb_explore(f)"
        zero = "0" if fixed else "0.0f"
        learn = f"""{head}
    int32_t f[{tilings}], f2[{tilings}], t, i;
    int a2;
    {v} delta, ad;
    rlb_ready();
    rlb_features(obs, f);
    rlb_features(next_obs, f2);
    a2 = rlb_explore(f2);
    if (action < 0 || action >= {n}) {{
        return a2;
    }}
{count}
    delta = rlb_sub(rlb_value(reward), rlb_q1(f, action));
    for (t = 0; t < {tilings}; ++t) {{ /* replacing traces */
        rlb_l.traces[f[t] * {n} + action] = {one};
    }}
    if (!done) {{
        delta = rlb_add(delta, rlb_mul({g}, rlb_q1(f2, a2))); /* gamma */
    }}
    ad = rlb_mul({a}, delta); /* alpha */
    for (i = 0; i < {n_values}; ++i) {{
        rlb_l.values[i] = rlb_clamp(rlb_add(rlb_l.values[i], rlb_mul(ad, rlb_l.traces[i])));
    }}
    for (i = 0; i < {n_values}; ++i) {{ /* gamma * lambda, or 0 at the end */
        rlb_l.traces[i] = done ? {zero} : rlb_mul({gl}, rlb_l.traces[i]);
    }}
    return a2;
}}"""
        end = f"""void rlb_policy_end_episode(void)
{{
    int32_t i;
    rlb_ready();
    for (i = 0; i < {n_values}; ++i) {{
        rlb_l.traces[i] = {zero};
    }}
}}"""
    return f"""int rlb_policy_act(const float *obs, float *action)
{{
{where}
    (void)action;
    return {act};
}}

int rlb_policy_act_explore(const float *obs)
{{
{where}
    return {exp};
}}

{learn}

{end}

const void *rlb_policy_state(uint32_t *bytes)
{{
    rlb_ready();
    if (bytes) {{
        *bytes = (uint32_t)sizeof rlb_l;
    }}
    return &rlb_l;
}}"""


def learn_h(policy: Policy, lr: Learner, size: LearnerSize) -> str:
    p = lr.params
    fmt = ("float32 (values clamped to +-1e30)" if not lr.ar.fixed else
           "Q16.16: int32 / 65536, saturating")  # fmt: skip
    return f"""/* Generated by rlbudget: the on-device learner of {origin(policy)}. Do not edit.
 *
 * {p.algorithm}, values in {fmt}.
 * alpha {p.alpha:g}, gamma {p.gamma:g}, lambda {p.lam:g}, epsilon {p.epsilon:g}, seed {p.seed}
 *   from: {p.source}.
 *
 * Loop: a = rlb_policy_act_explore(obs); then after each env step
 *   a = rlb_policy_learn(obs, a, reward, next_obs, terminated);
 *   (the next action, epsilon-greedy at next_obs); after an episode ends by truncation
 *   call rlb_policy_end_episode(), and start the next one with rlb_policy_act_explore.
 * rlb_policy_act(obs, NULL) acts greedily on the learned values. rlb_policy_reset()
 * restores the shipped policy. rlb_policy_state(&n) gives the state's n bytes (header,
 * values, traces); save them as STATE.bin and read them back into a policy folder with
 *   rlbudget import-state STATE.bin --policy POLICY -o OUT
 * RAM: {size.ram_bytes} bytes (RLB_LEARN_RAM_BYTES), static; no malloc. Not reentrant.
 */
#ifndef RLB_LEARN_H
#define RLB_LEARN_H

#include <stdint.h>

#include "{HEADER}"

#define RLB_LEARN_RAM_BYTES {size.ram_bytes}

#ifdef __cplusplus
extern "C" {{
#endif

int rlb_policy_act_explore(const float *obs);
int rlb_policy_learn(const float *obs, int action, float reward, const float *next_obs,
                     int done);
void rlb_policy_end_episode(void);
void rlb_policy_reset(void);
const void *rlb_policy_state(uint32_t *bytes);

#ifdef __cplusplus
}}
#endif

#endif /* RLB_LEARN_H */
"""


def export_learner(
    policy: Policy,
    out_dir: str | os.PathLike[str],
    params: LearnParams,
    dtype: str = "float32",
    *,
    parents: bool = False,
) -> ExportResult:
    """Write ``policy.h``, ``learn.h``, ``policy.c`` and ``main.c``: the policy, learning.

    :param params: α, γ, λ, ε and the seed (:func:`~rlbudget.agents.learner.learn_params`).
    :param dtype: ``float32`` (a core with an FPU) or ``q16.16`` (:func:`learner_dtype`).
    :returns: as :func:`~rlbudget.export.c.export_c`; ``ram_bytes`` counts the learner's
        state struct, ``flash_bytes`` the shipped values and the preprocess constants.
    :raises PolicyError: the policy cannot learn on the device (see
        :func:`~rlbudget.agents.learner.shipped_values`) or the dtype is unknown.
    """
    from rlbudget.fileio import atomic_write_dir

    lr = Learner(policy, params, dtype)
    size = learner_size(policy)
    w = CWriter()
    norm, last = split_preprocess(policy)
    if norm is not None:
        raise PolicyError("export --learn: a normalize step before the learner is not supported")
    if policy.observation_space.kind == "box":
        input_function(w, None)
    tilings = 0
    if isinstance(last, TileCode):
        _features(w, last)
        tilings = last.tilings
    else:
        state_function(w, policy, last)  # type: ignore[arg-type]
    ctype = "int32_t" if lr.ar.fixed else "float"
    w.const("rlb_shipped", lr.shipped.ravel().tolist(), ctype,
            f"the shipped values ({dtype}), for rlb_policy_reset")  # fmt: skip
    ops = FIXED_OPS if lr.ar.fixed else FLOAT_OPS
    w.ram = size.ram_bytes
    text = "\n\n".join(s for s in [
        f"/* Generated by rlbudget: {origin(policy)}, learning on the device. Do not edit. */",
        f'#include "{LEARN_HEADER}"\n\n#include <stdint.h>',
        CONST_MACRO,
        "/* --- constants (flash) --- */",
        *w.consts,
        "/* --- runtime functions --- */",
        *w.helpers.values(),
        ops,
        _learner_code(lr, tilings),
        _entry_points(lr, tilings),
    ] if s) + "\n"  # fmt: skip
    files = {HEADER: policy_h(policy, w), LEARN_HEADER: learn_h(policy, lr, size),
             SOURCE: text, HARNESS: HARNESS_TEXT}  # fmt: skip
    folder = atomic_write_dir(out_dir, {k: v.encode() for k, v in files.items()}, marker=HEADER,
                              parents=parents)  # fmt: skip
    return ExportResult(tuple(folder / name for name in files), w.ram, w.flash, False)
