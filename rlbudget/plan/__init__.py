"""Decision rules: (Budget, EnvSpec) → a ranked, explained Plan.

``rules.py`` holds the rules and the facts they read, ``model.py`` what a plan is (options,
estimates, checks, the binding limit), ``make.py`` how one is made (:func:`make_plan`).

The planner enumerates one candidate per compatible algorithm (and, for MLPs,
narrower shapes when the tuned one does not fit), estimates what each costs on
the target and on the training host, checks every figure against the budget with
the safety margin, and ranks the candidates by explicit rules. Each rule has an
id and a sentence (:data:`RULES`); the sentences that fired for an option are its
``reasons``.

Every figure is an estimate of the cost model, :mod:`rlbudget.costs` (bytes, RAM, MACs,
latency and energy of each option's body on the target; training RAM and energy on the
host). Training env steps come from the tuned hyperparameters' ``n_timesteps`` (what RL
Zoo or the source budgets to reach the threshold); host time from the algorithm's
measured throughput on this machine class plus any env step cost above CartPole's
(spread over on-policy env workers when the cost is measured, not when
``task.env_step_cost`` declares a real env); training energy = time × busy cores × the
``host`` device's active power per core.

Each figure is held against its limit as :mod:`rlbudget.limits` says (one
:class:`~rlbudget.limits.Check` per limit, the device's own RAM and flash included).
A figure passes when ``estimate × (1 + margin) ≤ limit``; ``fits`` means every
checked figure passes (inference, device capacity and training).
"""

from rlbudget.plan.make import make_plan, save_plan
from rlbudget.plan.model import SCHEMA, Estimates, Option, Plan
from rlbudget.plan.rules import RULES, Context, Rule
from rlbudget.plan.saved import PlanChoice, SavedPlan, load_plan

__all__ = [
    "RULES",
    "SCHEMA",
    "Context",
    "Estimates",
    "Option",
    "Plan",
    "PlanChoice",
    "Rule",
    "SavedPlan",
    "load_plan",
    "make_plan",
    "save_plan",
]
