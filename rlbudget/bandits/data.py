"""Logged bandit interactions: read, validated row by row, and written, as CSV or Parquet.

The schema (README, "Contextual bandits"): one row per decision, with

- the context: columns ``x0``, ``x1``, … (numbered from 0, in that order), or the columns
  a budget's ``task.context`` or the policy's provenance names;
- ``action``: the logged action, an integer from 0;
- ``reward``: the reward observed for it (any finite number);
- ``propensity``: the probability the logging policy gave that action, in (0, 1].

Other columns are ignored. Every value is checked; the first bad one is reported as one
line naming the file, the row (and, for CSV, the line) and the column. Parquet needs
pyarrow (``pip install 'rlbudget[parquet]'``).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlbudget.errors import DataError, RlbudgetError
from rlbudget.fileio import atomic_write_bytes, read_capped
from rlbudget.policy.kernels import Array
from rlbudget.units import format_bytes

REQUIRED = ("action", "reward", "propensity")
MAX_BYTES = 2 * 1024**3
# Learning and evaluating hold rows × actions and actions × (d + 1)² float64 values.
MAX_WORK_BYTES = 1024**3
MAX_ACTION = 2**20 - 1
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_CONTEXT = re.compile(r"x(\d+)")
_Column = Callable[[str], Array]


@dataclass(frozen=True, eq=False)
class Logged:
    """Logged decisions: contexts ``[n, d]`` (float64), actions ``[n]`` (int64), rewards
    and propensities ``[n]`` (float64); ``n_actions`` is the size of the action set."""

    contexts: Array
    actions: Array
    rewards: Array
    propensities: Array
    context_columns: tuple[str, ...]
    n_actions: int
    source: str = "<memory>"

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def features(self) -> int:
        return int(self.contexts.shape[1])


def data_format(path: str | os.PathLike[str]) -> str:
    """``csv`` or ``parquet`` from the file name.

    :raises DataError: any other suffix.
    """
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: logged data must be a .csv or .parquet file "
            f"(got '{Path(path).suffix or 'no suffix'}'); save it as one"
        )
    return fmt


def read_logged(
    path: str | os.PathLike[str],
    *,
    context: Sequence[str] | None = None,
    n_actions: int | None = None,
) -> Logged:
    """Read and check logged decisions.

    :param context: the context columns in order; default every ``x<i>`` column by ``i``.
    :param n_actions: the size of the action set (a policy's); default the largest
        logged action + 1. A logged action outside it is an error.
    :raises DataError: unreadable file, missing column, or a bad value (row and column
        named).
    """
    source = str(path)
    if not Path(path).is_file():
        what = "not a regular file" if Path(path).exists() else "no such file"
        raise DataError(f"{source}: {what}; check the path of the logged data")
    if data_format(path) == "parquet":
        header, column = _parquet_columns(source)
    else:
        header, column = _csv_columns(source)
    names = _context_names(source, header, context)
    missing = [c for c in (*names, *REQUIRED) if c not in header]
    if missing:
        raise DataError(
            f"{source}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)}; the header has {', '.join(header)}. "
            "Logged data needs the context columns, action, reward and propensity"
        )
    values = {c: column(c) for c in (*names, *REQUIRED)}
    if len(values["action"]) == 0:
        raise DataError(f"{source}: no rows; logged data needs at least one decision")
    actions = values["action"]
    bad = np.flatnonzero((actions != np.round(actions)) | (actions < 0) | (actions > MAX_ACTION))
    if bad.size:
        raise _bad(
            source,
            int(bad[0]),
            "action",
            actions[bad[0]],
            f"an action is an integer from 0 to {MAX_ACTION:,} (the index of the action taken)",
        )
    if n_actions is not None:
        unknown = np.flatnonzero(actions >= n_actions)
        if unknown.size:
            raise _bad(
                source,
                int(unknown[0]),
                "action",
                actions[unknown[0]],
                f"unknown action: the policy has actions 0..{n_actions - 1}",
            )
    k = n_actions if n_actions is not None else int(actions.max()) + 1
    _check_size(source, len(actions), k, len(names), n_actions is None)
    p = values["propensity"]
    bad = np.flatnonzero((p <= 0) | (p > 1))
    if bad.size:
        raise _bad(
            source,
            int(bad[0]),
            "propensity",
            p[bad[0]],
            "a propensity is the probability the logging policy gave the logged "
            "action, in (0, 1]; a 0 means the action could not have been logged",
        )
    return Logged(
        contexts=np.stack([values[c] for c in names], axis=1),
        actions=actions.astype(np.int64),
        rewards=values["reward"],
        propensities=p,
        context_columns=tuple(names),
        n_actions=k,
        source=source,
    )


def _check_size(source: str, rows: int, actions: int, features: int, logged: bool) -> None:
    """Refuse data whose model and per-row estimates would not fit in memory (``logged``:
    the action count is the largest logged action + 1)."""
    counted = " (the largest logged action + 1)" if logged else ""
    need = 8 * max(rows * actions, actions * (features + 1) ** 2)
    if need > MAX_WORK_BYTES:
        raise DataError(
            f"{source}: {rows:,} rows, {actions:,} actions{counted} "
            f"and {features:,} context columns need {format_bytes(need)} of float64 "
            f"working memory (rows × actions, actions × (columns + 1)²), over the "
            f"{format_bytes(MAX_WORK_BYTES)} limit; number the actions from 0, or use "
            "fewer rows, actions or context columns"
        )


def _context_names(source: str, header: Sequence[str], context: Sequence[str] | None) -> list[str]:
    if context:
        return list(context)
    numbered = sorted((int(m.group(1)), c) for c in header if (m := _CONTEXT.fullmatch(c)))
    if not numbered:
        raise DataError(
            f"{source}: no context columns x0, x1, …; name them so, or list the "
            "context columns (budget task.context)"
        )
    expected = [f"x{i}" for i in range(len(numbered))]
    if [c for _, c in numbered] != expected:
        raise DataError(
            f"{source}: context columns must be x0..x{len(numbered) - 1} without "
            f"gaps (got {', '.join(c for _, c in numbered)})"
        )
    return expected


def _where(source: str, row: int) -> str:
    """Rows count from 1; a CSV row r is on line r + 1 (the header is line 1)."""
    line = f" (line {row + 2})" if data_format(source) == "csv" else ""
    return f"{source}: row {row + 1}{line}"


def _bad(source: str, row: int, col: str, value: object, why: str) -> DataError:
    shown = value if isinstance(value, str) else f"{float(value):g}"  # type: ignore[arg-type]
    return DataError(f"{_where(source, row)}, column '{col}': {shown!r} is not valid; {why}")


def _numbers(source: str, col: str, cells: Sequence[str | float | None]) -> Array:
    """float64 values of one column; the first empty, non-numeric or non-finite cell is an
    error naming its row."""
    try:
        if None in cells:  # a Parquet null (numpy would read it as NaN)
            raise ValueError
        out = np.asarray(cells, dtype=np.float64)
    except (TypeError, ValueError):
        for i, cell in enumerate(cells):
            try:
                float(cell)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                text = "" if cell is None else str(cell)
                why = "the cell is empty" if not text.strip() else "not a number"
                raise DataError(
                    f"{_where(source, i)}, column '{col}': {text!r} is not valid; "
                    f"{why}, give a finite number"
                ) from None
        raise  # pragma: no cover - numpy and float() agree
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise _bad(source, int(bad[0]), col, out[bad[0]], "give a finite number (no NaN/inf)")
    return out


def _csv_columns(source: str) -> tuple[list[str], _Column]:
    try:
        raw = read_capped(source, MAX_BYTES, "logged data")
        text = raw.decode("utf-8-sig")
    except RlbudgetError as exc:
        raise DataError(str(exc)) from None
    except UnicodeDecodeError:
        raise DataError(f"{source}: not UTF-8 text; save the CSV as UTF-8") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise DataError(
            f"{source}: empty; the first line is the header (x0,...,action,reward,propensity)"
        )
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if r]  # a trailing blank line is not a row
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise DataError(
                f"{_where(source, i)}: {len(r)} fields, the header has "
                f"{len(header)}; every row needs one value per column"
            )
    index = {h: k for k, h in enumerate(header)}

    def column(name: str) -> Array:
        k = index[name]
        return _numbers(source, name, [r[k] for r in body])

    return header, column


def _parquet_columns(source: str) -> tuple[list[str], _Column]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{source}: reading Parquet needs pyarrow: pip install "
            "'rlbudget[parquet]' (or save the data as CSV)"
        ) from None
    import pyarrow as pa

    try:
        raw = read_capped(source, MAX_BYTES, "logged data")
    except RlbudgetError as exc:
        raise DataError(str(exc)) from None
    try:
        table = pq.read_table(pa.BufferReader(raw))
    except Exception as exc:  # pyarrow raises its own error types for a bad file
        raise DataError(
            f"{source}: not a readable Parquet file ({exc}); check that it was written completely"
        ) from None

    def column(name: str) -> Array:
        return _numbers(source, name, table.column(name).to_pylist())

    return list(table.column_names), column


def write_logged(logged: Logged, path: str | os.PathLike[str]) -> Path:
    """Write ``logged`` as CSV or Parquet (by the suffix), atomically.

    :raises DataError: unknown suffix, or Parquet without pyarrow.
    """
    names = [*logged.context_columns, *REQUIRED]
    cols = [*logged.contexts.T, logged.actions, logged.rewards, logged.propensities]
    if data_format(path) == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(
                f"{path}: writing Parquet needs pyarrow: pip install "
                "'rlbudget[parquet]' (or write CSV)"
            ) from None
        sink = io.BytesIO()
        pq.write_table(pa.table(dict(zip(names, cols, strict=True))), sink)
        data = sink.getvalue()
    else:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(names)
        ints = len(logged.context_columns)  # the action column is written as an integer
        for row in zip(*cols, strict=True):
            w.writerow([int(v) if k == ints else repr(float(v)) for k, v in enumerate(row)])
        data = out.getvalue().encode()
    atomic_write_bytes(path, data)
    return Path(path)
