"""The ``rlbudget`` command: each verb parses its options, calls one library function and
renders the result (:mod:`rlbudget.render`, or ``--json``).

Exit codes: 0 success, 1 the budget is not met (nothing fits), 2 bad input, 3 a bug
(an unexpected exception: one line, the traceback with RLBUDGET_DEBUG=1).
torch and stable_baselines3 are never imported here.

The verbs are registered below in the order ``rlbudget --help`` lists them.
"""

from __future__ import annotations

from rlbudget.cli import (
    bandit_commands,
    job_commands,
    plan_commands,
    policy_commands,
    train_command,
)
from rlbudget.cli.common import app, main

for _name, _command in (
    ("check", plan_commands.check),
    ("plan", plan_commands.plan),
    ("train", train_command.train),
    ("show", policy_commands.show),
    ("evaluate", policy_commands.evaluate),
    ("import", policy_commands.import_),
    ("devices", plan_commands.devices),
    ("compress", policy_commands.compress),
    ("export", policy_commands.export),
    ("import-state", policy_commands.import_state),
    ("profile", job_commands.profile),
    ("run", job_commands.run_command),
    ("sweep", job_commands.sweep),
    ("bandit-data", bandit_commands.bandit_data),
):
    app.command(_name)(_command)

__all__ = ["app", "main"]
