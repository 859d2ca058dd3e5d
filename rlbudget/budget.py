"""Budget files: YAML in, frozen dataclasses in SI units out.

The schema (README, "The budget file")::

    name: esp32-balance
    device: esp32                  # or {class: mcu, clock: 240MHz, sram: 520KiB, ...}
    inference: {ram: 64KiB, flash: 256KiB, latency: 2ms, energy: 0.5mJ}
    training: {time: 10min, env_steps: 200k, ram: 4GiB, energy: 20Wh, cores: 2}
    task: {env: CartPole-v1, min_return: 475, env_step_cost: 5ms}
    margin: 0.25

Every error is a :class:`~rlbudget.errors.BudgetError` whose message starts with
``FILE:LINE: KEY:`` and ends with a fix. The reader is deliberately stricter than
``yaml.safe_load``: anchors and aliases, tags, duplicate keys, files over 1 MiB
and nesting deeper than :data:`MAX_DEPTH` are rejected before anything is built,
and quantities are read from the scalar's source text, so YAML 1.1 coercions
(``1e3`` as a string, ``no`` as a boolean) never change a figure's meaning.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlbudget import units
from rlbudget.devices import DEVICE_CLASSES, Device, get_device, inline_device
from rlbudget.errors import BudgetError, DeviceError, RlbudgetError, UnitError
from rlbudget.fileio import read_capped

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 8
DEFAULT_MARGIN = 0.25
RECOMMENDED_MARGIN = (0.2, 0.3)


@dataclass(frozen=True)
class InferenceLimits:
    """Limits for one deployed policy on the device. ``None`` = not checked."""

    ram_bytes: int | None = None
    flash_bytes: int | None = None
    latency_s: float | None = None
    energy_j: float | None = None
    learn: bool = False  # the policy keeps learning on the device (its state in RAM)


@dataclass(frozen=True)
class TrainingLimits:
    """Limits for training on the host. ``None`` = not checked."""

    time_s: float | None = None
    env_steps: int | None = None
    ram_bytes: int | None = None
    energy_j: float | None = None
    cores: int | None = None
    replay: str | None = None  # replay storage, e.g. "float16+zstd" (rlbudget.replay)


@dataclass(frozen=True)
class Task:
    """What to learn: a gymnasium id, the return to reach, what a real step costs."""

    env_id: str | None = None
    min_return: float | None = None
    env_step_cost_s: float | None = None
    # Prior knowledge (rlbudget.agents.prior): a teacher policy or a demos file to start
    # from, and the env's gymnasium.make kwargs.
    teacher: str | None = None
    demos: str | None = None
    env_kwargs: dict[str, Any] | None = None
    # A contextual bandit (rlbudget.bandits): kind "bandit", learned in a one-step env or
    # from logged decisions (data, relative to the budget's folder; context: its columns).
    kind: str = "rl"
    data: str | None = None
    context: tuple[str, ...] | None = None
    # Sparse reward (plan rule sparse-reward): None lets rlbudget/data/exploration.yaml decide.
    sparse_reward: bool | None = None


@dataclass(frozen=True)
class Budget:
    """A loaded, validated budget. All quantities are SI (bytes, seconds, joules)."""

    name: str
    device: Device
    inference: InferenceLimits = field(default_factory=InferenceLimits)
    training: TrainingLimits = field(default_factory=TrainingLimits)
    task: Task = field(default_factory=Task)
    margin: float = DEFAULT_MARGIN
    source: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: SI numbers, the device in full, warnings."""
        return {
            "name": self.name,
            "source": self.source,
            "device": self.device.to_dict(),
            "inference": asdict(self.inference),
            "training": asdict(self.training),
            "task": asdict(self.task),
            "margin": self.margin,
            "warnings": list(self.warnings),
        }


# --- reading YAML with positions ----------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """A YAML node with the line (1-based) where it starts and the dotted key that reached it."""

    node: yaml.Node
    key: str

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1


class _Reader:
    """Turns a YAML document into checked values, every error positioned."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.text = text

    def fail(self, line: int | None, key: str | None, message: str) -> BudgetError:
        where = f"{self.source}:{line}" if line is not None else self.source
        prefix = f"{where}: {key}: " if key else f"{where}: "
        return BudgetError(prefix + message)

    def scan(self) -> None:
        """Reject aliases, anchors, tags and deep nesting from the token stream (no recursion)."""
        depth = 0
        opening = (
            yaml.BlockMappingStartToken,
            yaml.BlockSequenceStartToken,
            yaml.FlowMappingStartToken,
            yaml.FlowSequenceStartToken,
        )
        closing = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
        try:
            for token in yaml.scan(self.text, Loader=yaml.SafeLoader):
                line = token.start_mark.line + 1
                if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                    raise self.fail(
                        line,
                        None,
                        "YAML anchors and aliases (&name, *name) are not allowed in a budget; "
                        "write each value out in full",
                    )
                if isinstance(token, yaml.TagToken):
                    raise self.fail(
                        line,
                        None,
                        f"YAML tags such as '{_tag_text(token)}' are not allowed in a budget; "
                        "remove the tag and write a plain value",
                    )
                if isinstance(token, opening):
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise self.fail(
                            line,
                            None,
                            f"nesting deeper than {MAX_DEPTH} levels; a budget has at most "
                            "section → key → value (see README, 'The budget file')",
                        )
                elif isinstance(token, closing):
                    depth -= 1
        except yaml.YAMLError as exc:
            raise self._syntax(exc) from None

    def _syntax(self, exc: yaml.YAMLError) -> BudgetError:
        if isinstance(exc, yaml.reader.ReaderError):  # a control character, no mark
            at = self.text[: exc.position].count("\n") + 1
            c = exc.character
            code = ord(c) if isinstance(c, str) else int(c)
            return self.fail(
                at, None, f"not valid YAML: {exc.reason} (U+{code:04X}); "
                "remove the control character (save the budget as plain text)"
            )  # fmt: skip
        if not isinstance(exc, yaml.MarkedYAMLError):
            return self.fail(None, None, f"not valid YAML: {exc}")
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "invalid YAML"
        fix = "check the indentation and colons"
        if "'\\t'" in problem:
            fix = "YAML indents with spaces, not tabs: replace the tabs with spaces"
        return self.fail(line, None, f"not valid YAML: {problem}; {fix}")

    def compose(self) -> _Node | None:
        try:
            node = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise self._syntax(exc) from None
        return None if node is None else _Node(node, "")

    # Typed accessors. Each takes a node and returns a Python value or raises positioned.

    def mapping(self, n: _Node, allowed: tuple[str, ...]) -> dict[str, _Node]:
        if not isinstance(n.node, yaml.MappingNode):
            what = f"'{n.key}'" if n.key else "the budget"
            raise self.fail(
                n.line,
                n.key or None,
                f"expected a mapping with keys {', '.join(allowed)}; "
                f"indent them under {what} as 'key: value' lines",
            )
        out: dict[str, _Node] = {}
        for key_node, value_node in n.node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_line, n.key or None, "keys must be plain words")
            key = str(key_node.value)
            dotted = f"{n.key}.{key}" if n.key else key
            if key in out:
                raise self.fail(
                    key_line,
                    dotted,
                    f"duplicate key (first given on line {out[key].line}); keep only one",
                )
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise self.fail(
                    key_line, dotted, f"unknown key; {hint}allowed here: {', '.join(allowed)}"
                )
            out[key] = _Node(value_node, dotted)
        return out

    def scalar_text(self, n: _Node, expected: str) -> str:
        if not isinstance(n.node, yaml.ScalarNode):
            raise self.fail(n.line, n.key, f"expected {expected}, got a nested block")
        return str(n.node.value)

    def string(self, n: _Node) -> str:
        text = self.scalar_text(n, "a string").strip()
        if not text:
            raise self.fail(n.line, n.key, "is empty; give a value or leave the key out")
        return text

    def quantity(self, n: _Node, parse: Callable[[object], Any]) -> Any:
        text = self.scalar_text(n, "a quantity such as '64KiB' or '2ms'")
        try:
            return parse(text)
        except UnitError as exc:
            raise self.fail(n.line, n.key, str(exc)) from None

    def number(self, n: _Node, *, percent: bool = False) -> float:
        text = self.scalar_text(n, "a number").strip()
        scale = 1.0
        if percent and text.endswith("%"):
            text, scale = text[:-1].strip(), 0.01
        try:
            value = float(text.replace("_", "")) * scale
        except ValueError:
            example = "0.25 (or 25%)" if percent else "a plain number such as 475"
            raise self.fail(n.line, n.key, f"'{text}' is not a number; write {example}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise self.fail(n.line, n.key, f"'{text}' is not a finite number")
        return value

    def boolean(self, n: _Node) -> bool:
        text = self.scalar_text(n, "true or false").strip().lower()
        if text in ("true", "yes", "on"):
            return True
        if text in ("false", "no", "off"):
            return False
        raise self.fail(n.line, n.key, f"'{text}' is not true or false")


def _tag_text(token: Any) -> str:
    handle, suffix = token.value
    return f"{handle or ''}{suffix}"


def _path(r: _Reader, keys: dict[str, _Node], key: str, source: str) -> str | None:
    """A file the budget names, relative to the budget's folder (``minari:ID`` as is)."""
    if key not in keys:
        return None
    text = r.string(keys[key])
    if text.startswith("minari:") or Path(text).is_absolute() or source.startswith("<"):
        return text
    return str(Path(source).parent / text)


def _env_kwargs(r: _Reader, n: _Node) -> dict[str, Any]:
    """task.env_kwargs: a mapping of gymnasium.make kwargs (plain values only)."""
    from rlbudget.env_kwargs import parse_env_kwargs

    if not isinstance(n.node, yaml.MappingNode):
        raise r.fail(n.line, n.key, "expected a mapping of gymnasium.make kwargs, e.g. {g: 5.0}")
    value = yaml.SafeLoader("").construct_object(n.node, deep=True)
    try:
        out = parse_env_kwargs(dict(value), n.key)
    except RlbudgetError as exc:
        raise r.fail(n.line, None, str(exc)) from None
    assert out is not None
    return out


def _replay(r: _Reader, n: _Node) -> str:
    """training.replay: a replay storage such as float16+zstd, checked."""
    from rlbudget.replay import Storage

    text = r.string(n)
    try:
        return Storage.parse(text).label
    except RlbudgetError as exc:
        message = str(exc).removeprefix("training.replay: ")
        raise r.fail(n.line, "training.replay", message) from None


# --- the schema -------------------------------------------------------------------------

TOP_KEYS = ("name", "device", "inference", "training", "task", "margin")
INFERENCE_KEYS = ("ram", "flash", "latency", "energy", "learn")
TRAINING_KEYS = ("time", "env_steps", "ram", "energy", "cores", "replay")
TASK_KEYS = ("env", "min_return", "env_step_cost", "kind", "data", "context", "sparse_reward",
             "teacher", "demos", "env_kwargs")  # fmt: skip
TASK_KINDS = ("rl", "bandit")
INLINE_DEVICE_KEYS = ("class", "name", "clock", "sram", "flash", "fpu", "power")


def parse_budget(text: str, source: str = "<budget>") -> Budget:
    """Parse budget YAML text. ``source`` names the file in error messages.

    :raises BudgetError: positioned at the offending line and key, with a fix.
    """
    r = _Reader(text, source)
    r.scan()
    root = r.compose()
    if root is None:
        raise r.fail(
            None,
            None,
            "the budget is empty; start from an example in budgets/ "
            "(rlbudget check budgets/esp32-cartpole.yaml)",
        )
    top = r.mapping(root, TOP_KEYS)
    if "device" not in top:
        raise r.fail(root.line, "device", f"missing; {_DEVICE_FIX}")
    warnings: list[str] = []
    device = _device(r, top["device"])
    name = r.string(top["name"]) if "name" in top else Path(source).stem

    inf = r.mapping(top["inference"], INFERENCE_KEYS) if "inference" in top else {}
    inference = InferenceLimits(
        ram_bytes=_opt(r, inf, "ram", units.parse_bytes),
        flash_bytes=_opt(r, inf, "flash", units.parse_bytes),
        latency_s=_opt(r, inf, "latency", units.parse_time),
        energy_j=_opt(r, inf, "energy", units.parse_energy),
        learn=r.boolean(inf["learn"]) if "learn" in inf else False,
    )
    _check_against_device(r, inf, inference, device)

    tr = r.mapping(top["training"], TRAINING_KEYS) if "training" in top else {}
    cores = _opt(r, tr, "cores", units.parse_count)
    if cores is not None and cores > 1024:
        raise r.fail(tr["cores"].line, "training.cores", f"{cores} cores is not plausible")
    host_cores = os.cpu_count() or 1
    if cores is not None and cores > host_cores:
        warnings.append(
            f"training.cores is {cores} but this machine has {host_cores}; "
            "training here will use at most that many"
        )
    training = TrainingLimits(
        time_s=_opt(r, tr, "time", units.parse_time),
        env_steps=_opt(r, tr, "env_steps", units.parse_count),
        ram_bytes=_opt(r, tr, "ram", units.parse_bytes),
        energy_j=_opt(r, tr, "energy", units.parse_energy),
        cores=cores,
        replay=_replay(r, tr["replay"]) if "replay" in tr else None,
    )

    tk = r.mapping(top["task"], TASK_KEYS) if "task" in top else {}
    task = Task(
        env_id=r.string(tk["env"]) if "env" in tk else None,
        min_return=r.number(tk["min_return"]) if "min_return" in tk else None,
        env_step_cost_s=_opt(r, tk, "env_step_cost", units.parse_time),
        sparse_reward=r.boolean(tk["sparse_reward"]) if "sparse_reward" in tk else None,
        teacher=_path(r, tk, "teacher", source),
        demos=_path(r, tk, "demos", source),
        env_kwargs=_env_kwargs(r, tk["env_kwargs"]) if "env_kwargs" in tk else None,
        **_bandit_task(r, tk, source),
    )

    margin = DEFAULT_MARGIN
    if "margin" in top:
        n = top["margin"]
        margin = r.number(n, percent=True)
        if not 0.0 <= margin < 1.0:
            raise r.fail(
                n.line,
                "margin",
                f"{margin:g} is outside 0–1; the margin is a fraction "
                "(0.25 means measured × 1.25 must stay within each limit)",
            )
        lo, hi = RECOMMENDED_MARGIN
        if not lo <= margin <= hi:
            warnings.append(
                f"margin {margin:g} is outside the recommended {lo:g}–{hi:g} "
                "(estimates of device latency vary up to ~3x between software stacks)"
            )
    return Budget(
        name=name,
        device=device,
        inference=inference,
        training=training,
        task=task,
        margin=margin,
        source=source,
        warnings=tuple(warnings),
    )


def _bandit_task(r: _Reader, tk: dict[str, _Node], source: str) -> dict[str, Any]:
    """task.kind, task.data (a path relative to the budget's folder) and task.context."""
    kind = r.string(tk["kind"]) if "kind" in tk else "rl"
    if kind not in TASK_KINDS:
        raise r.fail(tk["kind"].line, "task.kind", f"'{kind}' is not one of: "
                     f"{', '.join(TASK_KINDS)}")  # fmt: skip
    for key in ("data", "context"):
        if key in tk and kind != "bandit":
            raise r.fail(tk[key].line, f"task.{key}", "is for a contextual bandit; add "
                         "'kind: bandit' to the task")  # fmt: skip
    if kind == "bandit" and "env" not in tk and "data" not in tk:
        raise r.fail(tk["kind"].line, "task.kind", "a bandit learns in a one-step env or "
                     "from logged decisions: give task.env or task.data (a .csv/.parquet "
                     "file, see 'rlbudget bandit-data')")  # fmt: skip
    data = r.string(tk["data"]) if "data" in tk else None
    if data is not None and not (Path(data).is_absolute() or source.startswith("<")):
        data = str(Path(source).parent / data)
    context = None
    if "context" in tk:  # "age, clicks" or a YAML list [age, clicks]
        node = tk["context"]
        items = ([_Node(n, node.key) for n in node.node.value]
                 if isinstance(node.node, yaml.SequenceNode) else [node])  # fmt: skip
        context = tuple(c.strip() for n in items for c in r.string(n).split(",") if c.strip())
        if not context:
            raise r.fail(node.line, node.key, "names no column; list the context columns")
    return {"kind": kind, "data": data, "context": context}


def default_budget_path() -> Path:
    """The bundled default budget (an MCU-class device and CartPole-v1): what ``rlbudget
    check``, ``plan`` and ``run`` read when no budget file is given."""
    from importlib import resources

    return Path(str(resources.files("rlbudget") / "data" / "budgets" / "default.yaml"))


def load_budget(path: str | os.PathLike[str]) -> Budget:
    """Read and validate a budget file.

    :raises BudgetError: missing, unreadable, too large, not UTF-8, or invalid content.
    """
    p = Path(path)
    source = str(path)
    if not p.exists():
        raise BudgetError(
            f"{source}: no such file; check the path (example budgets are in budgets/)"
        )
    if p.is_dir():
        raise BudgetError(f"{source}: is a folder; give the path of a budget .yaml file")
    try:
        raw = read_capped(source, MAX_BYTES, "a budget", too_long="the file is over the 1 MiB "
                          "limit for a budget; a budget is a few dozen lines")  # fmt: skip
    except RlbudgetError as exc:
        raise BudgetError(str(exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BudgetError(f"{source}:{line}: not UTF-8 text; save the budget as UTF-8") from None
    budget = parse_budget(text, source)
    from rlbudget.envs import budget_loaded

    budget_loaded(p, budget.task.env_id)
    return budget


def _opt(r: _Reader, section: dict[str, _Node], key: str, parse: Callable[[object], Any]) -> Any:
    return r.quantity(section[key], parse) if key in section else None


_DEVICE_FIX = (
    "name a device (see 'rlbudget devices') or describe one inline, "
    "e.g. device: {class: mcu, clock: 240MHz, sram: 520KiB, flash: 4MiB}"
)


def _device(r: _Reader, n: _Node) -> Device:
    if isinstance(n.node, yaml.ScalarNode):
        if not str(n.node.value).strip():
            raise r.fail(n.line, "device", f"is empty; {_DEVICE_FIX}")
        try:
            return get_device(r.string(n))
        except DeviceError as exc:
            raise r.fail(n.line, "device", str(exc)) from None
    if not isinstance(n.node, yaml.MappingNode):
        raise r.fail(n.line, "device", f"expected one device; {_DEVICE_FIX}")
    d = r.mapping(n, INLINE_DEVICE_KEYS)
    if "class" not in d:
        raise r.fail(
            n.line,
            "device.class",
            f"missing; an inline device needs a class, one of: {', '.join(DEVICE_CLASSES)}",
        )
    try:
        return inline_device(
            r.string(d["class"]),
            clock_hz=_opt(r, d, "clock", units.parse_frequency),
            sram_bytes=_opt(r, d, "sram", units.parse_bytes),
            flash_bytes=_opt(r, d, "flash", units.parse_bytes),
            fpu=r.boolean(d["fpu"]) if "fpu" in d else None,
            power_w=_opt(r, d, "power", units.parse_power),
            name=r.string(d["name"]) if "name" in d else "inline device",
        )
    except DeviceError as exc:
        raise r.fail(d["class"].line, "device.class", str(exc)) from None


def _check_against_device(
    r: _Reader, section: dict[str, _Node], inference: InferenceLimits, device: Device
) -> None:
    """A limit above what the device physically has makes the budget impossible."""
    checks = (
        ("ram", inference.ram_bytes, device.sram_bytes, "RAM" if _big(device) else "SRAM"),
        ("flash", inference.flash_bytes, device.flash_bytes, "flash/storage"),
    )
    for key, limit, available, what in checks:
        if limit is not None and limit > available:
            raise r.fail(
                section[key].line,
                f"inference.{key}",
                f"{units.format_bytes(limit)} is more than the device has "
                f"({device.id}: {units.format_bytes(available)} {what}); the budget is impossible. "
                f"Lower it to at most {units.format_bytes(available)} or pick a bigger device",
            )


def _big(device: Device) -> bool:
    return device.device_class in ("mpu", "gpu", "host")
