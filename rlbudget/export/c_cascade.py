"""``policy.c`` of a cascade policy (:mod:`rlbudget.policy.cascade`): each body exported as
a policy of its own (its preprocess, the body, an identity head that hands out the body's
float32 output), renamed ``rlb_p<k>_…`` and made static, then an entry point that runs the
small bodies, computes the confidence figure in float32 as numpy does (the top-two gap, or
the largest disagreement), calls the full body only when the small one is not confident,
and applies the cascade's head to the chosen output.

The bodies' code is the one the C export writes for them alone, so each is bit-exact with
numpy by the same rule (int8: integer-only); the branch compares the same float32 values
with the same float32 threshold, so C and numpy take the same branch.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rlbudget.envs import SpaceSpec
from rlbudget.export.c_source import CWriter, c_float, policy_c
from rlbudget.export.kernels import CONST_MACRO
from rlbudget.policy.cascade import Cascade
from rlbudget.policy.model import Head, Policy

Generate = Callable[[Policy], CWriter]
FLT_LOWEST = "-3.40282347e+38f"


def parts(policy: Policy) -> list[Policy]:
    """Each body of the cascade as a policy that outputs its float32 body output: the small
    ones (with their own input normalization), then the full one."""
    body = policy.body
    assert isinstance(body, Cascade)
    n = int(body.small[0].layers[-1].W.shape[1])
    raw = SpaceSpec(kind="box", shape=(n,), n=None, low=None, high=None, dtype="float32")
    out = []
    for b, norm in zip((*body.small, body.full), (*body.inputs, None), strict=True):
        pre = policy.preprocess if norm is None else (*policy.preprocess, norm)
        out.append(Policy(policy.observation_space, raw, pre, b, Head("identity")))
    return out


def _renamed(text: str, k: int) -> str:
    """A part's ``policy.c`` without its file header, names prefixed ``rlb_p<k>_``, the
    entry point static."""
    body = text.split(CONST_MACRO, 1)[1]
    body = re.sub(r"\brlb_", f"rlb_p{k}_", body)
    return body.replace(f"int rlb_p{k}_policy_act(", f"static int rlb_p{k}_policy_act(", 1)


def cascade_source(
    policy: Policy, generate: Generate, head: Callable[[CWriter, Policy, str, int], None]
) -> tuple[str, CWriter]:
    """The text of ``policy.c`` and a writer holding its sizes (flash, RAM, libm) and the
    entry point's code. ``generate`` is the C export's writer of one policy, ``head`` its
    head on a float32 output (as for any float body)."""
    body = policy.body
    assert isinstance(body, Cascade)
    subs = parts(policy)
    writers = [generate(p) for p in subs]
    n = int(body.small[0].layers[-1].W.shape[1])
    top = CWriter()
    top.flash = sum(w.flash for w in writers)
    top.ram = sum(w.ram for w in writers)
    top.libm = any(w.libm for w in writers)
    full = len(subs) - 1
    names = [f"rlb_y{k}" for k in range(len(subs))]
    for k, name in enumerate(names):
        top.buffer(name, "float", n, f"output of body {k} ({'full' if k == full else 'small'})")
    top.line("    float *rlb_y;\n    float rlb_figure;")
    for k in range(len(body.small)):
        top.line(f"    (void)rlb_p{k}_policy_act(obs, {names[k]});")
    y0 = names[0]
    if body.rule == "gap":
        top.line(f"""    {{ /* the gap between the two largest scores, as numpy's sorted top two */
        float rlb_best = {FLT_LOWEST}, rlb_second = {FLT_LOWEST};
        for (j = 0; j < {n}; ++j) {{
            if ({y0}[j] > rlb_best) {{
                rlb_second = rlb_best;
                rlb_best = {y0}[j];
            }} else if ({y0}[j] > rlb_second) {{
                rlb_second = {y0}[j];
            }}
        }}
        rlb_figure = rlb_best - rlb_second;
    }}""")
        test = f"rlb_figure >= {c_float(body.threshold)}"
    else:
        top.line(f"""    rlb_figure = 0.0f; /* the largest disagreement of the two small bodies */
    for (j = 0; j < {n}; ++j) {{
        float rlb_d = {y0}[j] - {names[1]}[j];
        if (rlb_d < 0.0f) {{
            rlb_d = -rlb_d;
        }}
        if (rlb_d > rlb_figure) {{
            rlb_figure = rlb_d;
        }}
    }}""")
        test = f"rlb_figure <= {c_float(body.threshold)}"
    top.line(f"""    if ({test}) {{
        rlb_y = {y0}; /* the small body decides */
    }} else {{
        (void)rlb_p{full}_policy_act(obs, {names[full]});
        rlb_y = {names[full]};
    }}""")
    head(top, policy, "rlb_y", n)
    texts = [
        _renamed(policy_c(p, w), k) for k, (p, w) in enumerate(zip(subs, writers, strict=True))
    ]
    header, rest = policy_c(policy, top).split(CONST_MACRO, 1)
    return header + CONST_MACRO + "".join(texts) + rest, top
