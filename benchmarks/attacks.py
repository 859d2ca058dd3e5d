"""Re-run the attacks of issue 14 (items 1, 6, 7, 9) and the fuzz counts; print a table.

Usage (from the repository root; PYTHONPATH picks the rlbudget under test):

    python benchmarks/attacks.py                      # this checkout
    PYTHONPATH=/tmp/rlbudget-main python benchmarks/attacks.py   # an older checkout
    python benchmarks/attacks.py --budgets 1000 --policies 200   # the full fuzz counts

Columns: cases; clean exits (0, 1 or 2, one stderr line, no traceback, nothing that
should not be accepted); tracebacks (an exception escaped, or exit 3); code-ran (a
module named by a file was imported: its marker file appeared); accepted-invalid (exit 0
on an input that is invalid, or a nan/inf literal in exported C).

Every case runs in-process (Typer's CliRunner) except those that read /dev/zero or a FIFO,
which run in a subprocess with a memory cap and a timeout (an unbounded read must not take
this machine down). The fuzz generators are loaded from tests/test_fuzz.py by path.
"""

from __future__ import annotations

import argparse
import base64
import errno
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    cases: int = 0
    clean: int = 0
    tracebacks: int = 0
    code_ran: int = 0
    accepted_invalid: int = 0
    examples: list[str] = field(default_factory=list)


ROWS: dict[str, Row] = {}


def record(item: str, name: str, code: int, stderr: str, escaped: BaseException | None, *,
           ran: bool = False, invalid_ok: bool = False) -> None:  # fmt: skip
    """One case. ``invalid_ok``: the input is invalid, so exit 0 counts as accepted-invalid."""
    row = ROWS.setdefault(item, Row())
    row.cases += 1
    tb = escaped is not None or code not in (0, 1, 2) or "Traceback" in stderr
    accepted = invalid_ok and code == 0
    row.tracebacks += tb
    row.code_ran += ran
    row.accepted_invalid += accepted
    if not (tb or ran or accepted):
        row.clean += 1
    elif len(row.examples) < 3:
        why = "traceback" if tb else "code ran" if ran else "accepted"
        err = (stderr.strip().splitlines() or [repr(escaped)])[-1][:110]
        row.examples.append(f"{name}: {why} (exit {code}) {err}")


def cli(args: list[str]) -> tuple[int, str, BaseException | None]:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    r = CliRunner().invoke(app, args)
    escaped = r.exception if not isinstance(r.exception, SystemExit) else None
    return r.exit_code, r.stderr, escaped


def cartpole_policy(folder: Path, env: str = "CartPole-v1", edit: Callable[[dict], None] | None
                    = None) -> Path:  # fmt: skip
    import numpy as np

    from rlbudget.envs import env_spec
    from rlbudget.policy import MLP, Dense, Head, Normalize, Policy, save_policy

    rng = np.random.default_rng(0)
    s = env_spec("CartPole-v1", measure_steps=0)
    w = [rng.standard_normal(sh).astype(np.float32) for sh in [(4, 8), (8,), (8, 2), (2,)]]
    p = Policy(s.observation, s.action, (Normalize(np.zeros(4, np.float32),
                                                  np.ones(4, np.float32), 5.0),),
               MLP((Dense(w[0], w[1], "tanh"), Dense(w[2], w[3]))), Head("argmax"),
               {"algorithm": "ppo", "env": env})  # fmt: skip
    out = save_policy(p, folder)
    if edit is not None:
        doc = json.loads((out / "policy.json").read_text())
        edit(doc)
        (out / "policy.json").write_text(json.dumps(doc))
    return out


def evil_module(tmp: Path) -> tuple[str, Path]:
    name = f"evilmod_{uuid.uuid4().hex[:8]}"
    marker = tmp / f"{name}.ran"
    (tmp / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    if str(tmp) not in sys.path:
        sys.path.insert(0, str(tmp))
    return name, marker


# --- item 1 ------------------------------------------------------------------------------


def item1(tmp: Path) -> None:
    b = tmp / "plain.yaml"
    b.write_text("device: esp32\n")
    for cmd in ("evaluate", "compress", "profile", "export"):
        mod, marker = evil_module(tmp)
        pol = cartpole_policy(tmp / f"evil-{cmd}", env=f"{mod}:CartPole-v1")
        args = {
            "evaluate": ["evaluate", str(pol), "--episodes", "1"],
            "compress": [
                "compress",
                str(pol),
                "-m",
                "int8",
                "--episodes",
                "1",
                "-o",
                str(tmp / f"c-{mod}"),
            ],
            "profile": ["profile", str(pol), "-b", str(b), "--episodes", "1"],
            "export": ["export", str(pol), "--format", "c", "-o", str(tmp / f"x-{mod}")],
        }
        code, err, esc = cli(args[cmd])  # fmt: skip
        record("1 env id from policy.json", cmd, code, err, esc, ran=marker.exists())
    mod, marker = evil_module(tmp)
    plan = tmp / "plan.yaml"
    cli(["plan", "-o", str(plan)])
    if plan.is_file():
        plan.write_text(plan.read_text().replace("env_id: CartPole-v1",
                                                 f"env_id: {mod}:CartPole-v1"))  # fmt: skip
        code, err, esc = cli(["train", str(plan), "-o", str(tmp / "run-plan")])
        record("1 env id from a plan file", "train plan", code, err, esc, ran=marker.exists())
    try:
        from stable_baselines3 import PPO
    except ImportError:
        return
    zips = tmp / "zips"
    zips.mkdir()
    base = zips / "ppo-CartPole-v1.zip"
    PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [8]}).save(base)
    for layout in ("folder", "zip name"):
        mod, marker = evil_module(tmp)
        if layout == "folder":
            d = zips / f"ppo-{mod}:CartPole-v1"
            d.mkdir()
            (d / f"{mod}:CartPole-v1.zip").write_bytes(base.read_bytes())
        else:
            d = zips / f"ppo-{mod}:CartPole-v1.zip"
            d.write_bytes(base.read_bytes())
        out = tmp / f"imp-{mod}"
        code, err, esc = cli(["import", str(d), "-o", str(out)])
        record("1 env id from an SB3 name", f"import {layout}", code, err, esc,
               ran=marker.exists())  # fmt: skip
        if out.exists():
            code, err, esc = cli(["evaluate", str(out), "--episodes", "1"])
            record("1 env id from an SB3 name", f"evaluate {layout}", code, err, esc,
                   ran=marker.exists())  # fmt: skip


# --- item 6 ------------------------------------------------------------------------------


def item6(tmp: Path) -> None:
    for ch in ("\x00", "\x07", "\x1b", "\ufffe", "\x85"):
        p = tmp / "ctl.yaml"
        p.write_text(f"device: esp32\nname: a{ch}b\n", encoding="utf-8")
        code, err, esc = cli(["check", str(p)])
        record("6 YAML control characters", repr(ch), code, err, esc, invalid_ok=ch != "\x85")
    for algo, env in (("sac", "CartPole-v1"), ("td3", "CartPole-v1"), ("dqn", "Pendulum-v1"),
                      ("q-learning", "Pendulum-v1"), ("ppo", "FrozenLake-v1")):  # fmt: skip
        if (algo, env) == ("ppo", "FrozenLake-v1"):
            continue  # valid: ppo takes a Discrete observation (one-hot)
        code, err, esc = cli(["train", "--algo", algo, "--env", env, "-o",
                              str(tmp / f"run-{algo}-{env}"), "-q"])  # fmt: skip
        record("6 algorithm/space mismatch", f"{algo} {env}", code, err, esc, invalid_ok=True)
    pol = cartpole_policy(tmp / "ok")
    real_fsync = os.fsync

    def full(*a: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    for name, args in (("export c", ["export", str(pol), "--format", "c", "-o", str(tmp / "e")]),
                       ("compress", ["compress", str(pol), "-m", "fp16", "--episodes", "1",
                                     "-o", str(tmp / "f")]),
                       ("train", ["train", "--algo", "q-learning", "--env", "FrozenLake-v1",
                                  "-o", str(tmp / "t"), "-q"])):  # fmt: skip
        os.fsync = full  # type: ignore[assignment]
        try:
            code, err, esc = cli(args)
        finally:
            os.fsync = real_fsync
        record("6 disk full (ENOSPC)", name, code, err, esc)
    deep = cartpole_policy(tmp / "deep")
    text = (deep / "policy.json").read_text()
    (deep / "policy.json").write_text(text[:-2] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, err, esc = cli(["show", str(deep)])
    record("6 deep nesting", "policy.json", code, err, esc, invalid_ok=True)
    item6_sb3(tmp)


def _rezip(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for n in zin.namelist():
            raw = zin.read(n)
            if n == "data":
                d = json.loads(raw)
                edit(d)
                raw = json.dumps(d).encode()
            zout.writestr(n, raw)
    return dst


def item6_sb3(tmp: Path) -> None:
    try:
        from stable_baselines3 import PPO
    except ImportError:
        return
    base = tmp / "ppo-CartPole-v1.zip"
    PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [8]}).save(base)

    def dtype(code: bytes) -> Callable[[dict], None]:
        def edit(d: dict) -> None:
            e = d["observation_space"]
            raw = base64.b64decode(e[":serialized:"])
            e[":serialized:"] = base64.b64encode(raw.replace(b"f4", code)).decode()

        return edit

    def shape(v: Any) -> Callable[[dict], None]:
        def edit(d: dict) -> None:
            e = d["observation_space"]
            e.pop(":serialized:", None)
            e["_shape"] = v

        return edit

    def nest(d: dict) -> None:
        d["policy_kwargs"] = "DEEP"

    cases: dict[str, Callable[[dict], None]] = {
        "dtype i3": dtype(b"i3"), "dtype u9": dtype(b"u9"), "dtype f3": dtype(b"f3"),
        "shape ['a']": shape(["a"]), "shape [-1]": shape([-1]), "shape [2, 2]": shape([2, 2]),
        "shape [1e9, 1e9]": shape([10**9, 10**9]), "shape null-list": shape([None]),
        "deep data": nest,
    }  # fmt: skip
    for name, edit in cases.items():
        z = _rezip(base, tmp / f"m{len(name)}-{uuid.uuid4().hex[:6]}.zip", edit)
        if name == "deep data":
            deep = z.with_name("deep-" + z.name)
            with zipfile.ZipFile(z) as zin, zipfile.ZipFile(deep, "w") as zout:
                for n in zin.namelist():
                    data = zin.read(n)
                    if n == "data":
                        nested = b"[" * 100_000 + b"]" * 100_000
                        data = data.replace(b'"DEEP"', nested)
                    zout.writestr(n, data)
            z = deep
        code, err, esc = cli(["import", str(z), "--env", "CartPole-v1", "-o",
                              str(tmp / f"i-{z.stem}")])  # fmt: skip
        record("6 corrupt SB3 data (dtype, shape, depth)", name, code, err, esc, invalid_ok=True)


# --- item 7 ------------------------------------------------------------------------------


def item7(tmp: Path) -> None:
    def pre(**kw: Any) -> Callable[[dict], None]:
        return lambda d: d["preprocess"][0].update(kw)

    cases = {"nan clip": pre(clip=float("nan")), "negative eps": pre(eps=-1.0),
             "inf eps": pre(eps=float("inf")), "zero clip": pre(clip=0),
             "clip 1e999": pre(clip=1e999), "string clip": pre(clip="5")}  # fmt: skip
    for i, (name, edit) in enumerate(cases.items()):
        pol = cartpole_policy(tmp / f"p7-{i}", edit=edit)
        for cmd in (["evaluate", str(pol), "--env", "CartPole-v1", "--episodes", "2"],
                    ["export", str(pol), "--format", "c", "-o", str(tmp / f"c7-{i}")]):  # fmt: skip
            code, err, esc = cli(cmd)
            record("7 invalid numbers in a policy", f"{name} {cmd[0]}", code, err, esc,
                   invalid_ok=True)  # fmt: skip
    from safetensors.numpy import load, save

    pol = cartpole_policy(tmp / "p7-w")
    arrays = load((pol / "policy.safetensors").read_bytes())
    arrays["body.0.W"] = arrays["body.0.W"] * 0 + 1e38
    (pol / "policy.safetensors").write_bytes(save(arrays))
    code, err, esc = cli(["export", str(pol), "--format", "c", "-o", str(tmp / "c7-w")])
    literal = any(w in f.read_text() for f in (tmp / "c7-w").glob("*.c")
                  for w in ("nan", "inf", "INFINITY", "NAN")) if code == 0 else False  # fmt: skip
    record("7 invalid numbers in a policy", "weights 1e38 export", code, err, esc,
           invalid_ok=True)  # fmt: skip
    if literal:
        ROWS["7 invalid numbers in a policy"].examples.append("export wrote nan/inf literals")
    from rlbudget.envs import env_spec
    from rlbudget.policy import Head, Linear, Policy, TileCode, save_policy

    s = env_spec("CartPole-v1", measure_steps=0)
    import numpy as np

    tc = TileCode(np.full(4, -3.0), np.full(4, 3.0), 2, 2, 64)
    base = save_policy(Policy(s.observation, s.action, (tc,),
                              Linear(np.zeros((tc.features, 2), np.float32),
                                     np.zeros(2, np.float32), None), Head("argmax")),
                       tmp / "tiles")  # fmt: skip
    for value in ("0", "1e999", "-3", "2.5"):
        doc = json.loads((base / "policy.json").read_text())
        doc["preprocess"][0]["tiles_per_dim"] = "SENTINEL"
        (base / "policy.json").write_text(json.dumps(doc).replace('"SENTINEL"', value))
        code, err, esc = cli(["evaluate", str(base), "--env", "CartPole-v1", "--episodes", "1"])
        record("7 invalid numbers in a policy", f"tiles_per_dim {value}", code, err, esc,
               invalid_ok=True)  # fmt: skip


# --- item 9 ------------------------------------------------------------------------------

_BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from rlbudget.cli import main
sys.argv = ["rlbudget", "check", sys.argv[1]]
main()
"""


def item9(tmp: Path) -> None:
    for key, value in (("inference:\n  ram", "1e-20 GiB"), ("inference:\n  flash", "1e-9 B"),
                       ("training:\n  cores", "1e-10"), ("training:\n  ram", "0.4 B"),
                       ("training:\n  env_steps", "1e-7")):  # fmt: skip
        p = tmp / "b9.yaml"
        p.write_text(f"device: esp32\n{key}: {value}\n")
        code, err, esc = cli(["check", str(p)])
        record("9 figures that round to zero", f"{key.split()[-1]} {value}", code, err, esc,
               invalid_ok=True)  # fmt: skip
    targets = ["/dev/zero"]
    if hasattr(os, "mkfifo"):
        fifo = tmp / "budget.fifo"
        os.mkfifo(fifo)
        targets.append(str(fifo))
    for target in targets:
        writer = None
        if target.endswith(".fifo"):
            writer = subprocess.Popen([sys.executable, "-c", f"import sys\nf=open({target!r},'wb')"
                                       "\ntry:\n    while True: f.write(b'#' * 65536 + b'\\n')\n"
                                       "except Exception: pass"])  # fmt: skip
        try:
            r = subprocess.run([sys.executable, "-c", _BOUNDED, target], capture_output=True,
                               text=True, timeout=60, env=os.environ.copy())  # fmt: skip
            code, err = r.returncode, r.stderr
        except subprocess.TimeoutExpired:
            code, err = -9, "timed out after 60 s (read without bound)"
        finally:
            if writer is not None:
                writer.kill()
                writer.wait()
        record("9 unbounded read (check)", Path(target).name, code, err, None)


# --- fuzz --------------------------------------------------------------------------------


def fuzz(tmp: Path, budgets: int, policies: int) -> None:
    spec = importlib.util.spec_from_file_location("rlbudget_fuzz", HERE / "tests" / "test_fuzz.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def on(item: str) -> Callable[[str, int, str, BaseException | None], None]:
        return lambda what, code, err, esc: record(item, what[:60], code, err, esc)

    (tmp / "fb").mkdir()
    (tmp / "fp").mkdir()
    mod.fuzz_budgets(budgets, tmp / "fb", on_case=on(f"fuzz: {budgets} budgets (check/plan)"))
    mod.fuzz_policies(
        policies, tmp / "fp", on_case=on(f"fuzz: {policies} policy folders (show/evaluate/export)")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=int, default=1000)
    ap.add_argument("--policies", type=int, default=200)
    ap.add_argument("--examples", action="store_true", help="show up to 3 failures per row")
    args = ap.parse_args()
    import warnings

    import rlbudget

    warnings.filterwarnings("ignore")
    print(f"rlbudget {rlbudget.__version__} from {Path(rlbudget.__file__).parent}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for step in (item1, item6, item7, item9):
                try:
                    step(tmp)
                except Exception as exc:  # an attack harness that breaks is itself a finding
                    record(step.__name__, "harness", 3, f"{type(exc).__name__}: {exc}", exc)
            fuzz(tmp, args.budgets, args.policies)
        finally:
            os.chdir(cwd)
    head = ("attack", "cases", "clean exits", "tracebacks", "code-ran", "accepted-invalid")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    total = Row()
    for name, r in ROWS.items():
        print(f"| {name} | {r.cases} | {r.clean} | {r.tracebacks} | {r.code_ran} | "
              f"{r.accepted_invalid} |")  # fmt: skip
        for k in ("cases", "clean", "tracebacks", "code_ran", "accepted_invalid"):
            setattr(total, k, getattr(total, k) + getattr(r, k))
    print(f"| **total** | {total.cases} | {total.clean} | {total.tracebacks} | "
          f"{total.code_ran} | {total.accepted_invalid} |")  # fmt: skip
    if args.examples:
        for name, r in ROWS.items():
            for e in r.examples:
                print(f"  {name}: {e}")


if __name__ == "__main__":
    main()
