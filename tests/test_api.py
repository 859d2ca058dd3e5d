"""The public API at the top of the package (issue 15, item 9): one function per stage,
imported lazily; ``compress`` and ``profile`` are both their stage's package and function."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import rlbudget
from rlbudget.budget import load_budget
from rlbudget.compress.pipeline import compress
from rlbudget.profile.verdict import ProfileReport
from tests.factories import frozenlake_table

STAGES = ("load_budget", "make_plan", "train_run", "compress", "export_c", "export_onnx",
          "profile", "run_job", "import_model", "load_policy")  # fmt: skip
README = Path(__file__).resolve().parents[1] / "README.md"


def fresh(code: str) -> str:
    """stdout of ``code`` in a fresh interpreter (no test has imported anything there)."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_stage_functions_import_from_the_top_without_torch() -> None:
    out = fresh(
        f"import sys\nfrom rlbudget import {', '.join(STAGES)}\n"
        "print(all(map(callable, [" + ", ".join(STAGES) + "])), "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'stable_baselines3')))"
    )
    assert out == "True []\n"


def test_every_name_in_all_resolves() -> None:
    assert set(STAGES) <= set(rlbudget.__all__)
    out = fresh("import rlbudget\nprint([n for n in rlbudget.__all__ "
                "if getattr(rlbudget, n, None) is None])")  # fmt: skip
    assert out == "[]\n"


def test_compress_and_profile_are_callable_packages_in_either_import_order() -> None:
    # the function's name first, then a submodule; and the other way round
    for code in ("from rlbudget import profile, compress\nimport rlbudget.profile.verdict\n",
                 "import rlbudget.profile.verdict, rlbudget.compress.pipeline\n"
                 "from rlbudget import profile, compress\n"):  # fmt: skip
        out = fresh(code + "import rlbudget\nprint(callable(profile), callable(compress), "
                    "rlbudget.profile is profile, rlbudget.profile.verdict.__name__, "
                    "rlbudget.compress.pipeline.__name__)")  # fmt: skip
        assert out == "True True True rlbudget.profile.verdict rlbudget.compress.pipeline\n"


def test_calling_the_packages_calls_the_stage_functions(tmp_path: Path) -> None:
    table = frozenlake_table()  # a random table: what the stage functions do is checked
    via_package = rlbudget.compress(table, "pack", "FrozenLake-v1", episodes=3, states=50)
    direct = compress(table, "pack", "FrozenLake-v1", episodes=3, states=50)
    assert via_package.to_dict() == direct.to_dict()
    budget = tmp_path / "b.yaml"
    budget.write_text("name: open\ndevice: rp2040\ntask: {env: FrozenLake-v1}\n")
    report = rlbudget.profile(table, load_budget(budget), episodes=3, calls=1000)
    assert isinstance(report, ProfileReport) and report.format == "c"
    assert report.returns is not None and report.returns.episodes == 3


def test_the_readme_library_table_uses_every_stage_function() -> None:
    section = README.read_text(encoding="utf-8").split("## Library first", 1)[1]
    section = section.split("\n## ", 1)[0]
    imported = [
        name.strip()
        for line in section.splitlines()
        if line.startswith("from rlbudget import ")
        for name in line.removeprefix("from rlbudget import ").split(",")
    ]
    assert imported == list(STAGES)
    missing = [name for name in STAGES if f"rlbudget.{name}(" not in section]
    assert not missing, missing
