"""The planner's rules: each an id a user can grep for and the sentence that explains it,
the facts about a budget and env that they read (:class:`Context`), and the preference
they give each option (:func:`preference`). Which algorithms can act in the env's spaces
is the algorithms table's (:meth:`~rlbudget.hyperparams.AlgorithmInfo.incompatibility`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rlbudget import units
from rlbudget.budget import Budget
from rlbudget.costs import Body
from rlbudget.devices import Device
from rlbudget.envs import EnvSpec
from rlbudget.hyperparams import AlgorithmInfo, get_hyperparams
from rlbudget.limits import target_return
from rlbudget.plan.calibrate import Calibration
from rlbudget.plan.sparse import bonus, sparse_reason
from rlbudget.plan.widths import quickest

# Low-dimensional limits: a uniform grid over more dims explodes; tile coding hashes up to ~8.
MAX_TABLE_STATES = 2**24
# An env step at or above this is "expensive" (a robot, a slow simulator).
EXPENSIVE_STEP_S = 1e-3


@dataclass(frozen=True)
class Rule:
    """A decision rule: an id a user can grep for and the sentence that explains it."""

    id: str
    text: str


RULES = {
    r.id: r
    for r in (
        Rule("spaces", "Only algorithms that support the env's observation and action spaces."),
        Rule(
            "discrete-obs",
            "Discrete observations: a table is exact and tiny, so tabular methods come first.",
        ),
        Rule(
            "mcu-small",
            "MCU-class device or tight RAM/flash: tabular and tile-coded linear policies come "
            "first; an int8 MLP only if it fits with the margin.",
        ),
        Rule(
            "8-bit",
            "8-bit core: no 32-bit MAC and no int8 NN kernels, so MLPs are not planned; "
            "tabular or linear only.",
        ),
        Rule(
            "headroom",
            "MPU/GPU/host with room to spare: an MLP policy (PPO/A2C/DQN for discrete actions, "
            "SAC/TD3 for continuous) learns the most robust policy.",
        ),
        Rule(
            "continuous-actions",
            "Box actions: SAC/TD3 (off-policy, squashed/deterministic actors) are the tuned "
            "choice; ARS gives a linear policy for the smallest devices.",
        ),
        Rule(
            "expensive-env",
            "Expensive environment: model-based and sample-efficient off-policy methods rank "
            "above on-policy ones.",
        ),
        Rule(
            "model-based",
            "PETS and MBPO learn a model and reach their return in fewer env steps than SAC"
            " (PETS ≈1/8 in Chua et al. 2018, MBPO ≈1/2.5-1/8 in Janner et al. 2019; on "
            "Pendulum-v1 here PETS's planner met -200 on fresh episodes after 450 and 650 "
            "env steps where SAC needed 6,000 and 3,000 in the same run (2 seeds), MBPO "
            "1,200-2,200 in an earlier run), but pay in host time per env step (PETS plans "
            "at every step, ≈9 per CPU-second; MBPO takes 10 SAC updates per step, ≈8 per "
            "CPU-second; SAC 44, PPO 1,900): first when env steps are expensive or scarce, "
            "else below model-free options. PETS ranks above MBPO: no actor-critic to tune,"
            " no stable-baselines3 needed, and its planner got there in fewer env steps "
            "than MBPO's runs (a run comparing both on the same seeds is still to be made);"
            " a PETS run stops when its planner meets the target and then distils a small "
            "MLP from it in the learned model, with no more env steps; MBPO deploys the SAC"
            " actor it trained.",
        ),
        Rule("not-yet", "Not yet supported by rlbudget's trainers: shown, never ranked first."),
        Rule(
            "replay-ram",
            "Training RAM bounds the replay buffer: capacity × bytes per transition in the "
            "storage training.replay names (float32 as SB3, float16, uint8, each +zstd or "
            "+lz4); the plan says how many transitions fit.",
        ),
        Rule(
            "feasible-steps",
            "Training time × throughput bounds the env steps; options needing more are marked.",
        ),
        Rule("int8", "Latency/energy/memory limits: deploy int8 (4× smaller than fp32)."),
        Rule(
            "cascade",
            "Energy per decision over its limit while the latency is met even in the worst "
            "case: when no plain option of the algorithm fits, deploy a cascade (compress "
            "--method cascade: a tiny int8 student decides alone when confident, else the "
            "full policy), priced at its mean decision for energy, small + (1 − share) × "
            "full, with the share measured (data/cascade.yaml), and at its worst case, small "
            "+ full, for latency; run tries it right after int8.",
        ),
        Rule(
            "width",
            "An MLP's hidden width is chosen for the device and the training budget: of the "
            "widths with measured steps to the target, the cheapest to train that fits every "
            "limit with the margin; the reason names the limit that ruled out the others.",
        ),
        Rule(
            "throughput",
            "Training seconds per env step at each width: calibrated on this host "
            "(`rlbudget calibrate`), else algorithms.yaml's figure scaled by the width law.",
        ),
        Rule(
            "cores",
            "Training cores: SB3's envs step in worker processes, and evaluation "
            "episodes run in them, where the env's step cost pays for their IPC (measured: "
            "rlbudget/data/parallel.yaml); the speed-up is estimated by Amdahl's law.",
        ),
        Rule("fits", "Options that fit every limit with the margin rank first."),
        Rule(
            "on-device-learning",
            "inference.learn: the deployed policy keeps learning on the device, so only "
            "options with an on-device learner are planned: tabular Q-learning and SARSA "
            "and tile-coded Sarsa(λ) (rlbudget export --learn), and for a one-step task "
            "the online bandit learners (LinUCB, Thompson sampling, softmax, ε-greedy); "
            "the others are excluded.",
        ),
        Rule(
            "prior-knowledge",
            "Prior knowledge available (task.teacher or task.demos): start from it. Imitation "
            "(DAgger with a teacher, behaviour cloning from demos) ranks first; it needs a "
            "few thousand env steps where training from scratch needs 10-100x more.",
        ),
        Rule(
            "bandit",
            "One-step task (task.kind: bandit, or max_episode_steps 1): a contextual bandit "
            "deploys a linear policy, argmax over per-arm scores; LinUCB, then Thompson "
            "sampling, softmax and ε-greedy online, DR before IPS from logged data.",
        ),
        Rule(
            "sparse-reward",
            "Sparse reward: an exploration bonus is added to the training reward (Sarsa(λ): "
            "a count bonus on the active tiles, turned on; PPO/SAC/DQN: Random Network "
            "Distillation, offered but not turned on until measured); the deployed policy "
            "is unchanged.",
        ),
    )
}


@dataclass(frozen=True)
class Context:
    """Facts about the budget and env that the rules read."""

    device_class: str
    mcu: bool
    eight_bit: bool
    tight_memory: bool
    expensive_env: bool
    expensive_why: str
    step_cost_s: float | None
    step_cost_source: str
    cores: int
    target_return: float | None
    throughput: str = ""  # how training seconds per step were obtained (calibrated or not)
    sparse_reward: str = ""  # why the reward is sparse (rule sparse-reward), "" if not
    prior: str | None = None  # the budget's task.teacher / task.demos, in words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def facts(
    budget: Budget, env: EnvSpec, usable: Sequence[AlgorithmInfo], cal: Calibration | None = None
) -> Context:
    """The facts the rules read (``cal``: this host's calibration, for training times)."""
    usable = [a for a in usable if a.family != "imitation"]  # they learn from a teacher
    device = budget.device
    mcu = device.device_class in ("mcu", "mcu-accel")
    inf = budget.inference
    tight = (inf.ram_bytes is not None and inf.ram_bytes <= 64 * 1024) or (
        inf.flash_bytes is not None and inf.flash_bytes <= 256 * 1024
    )
    step_cost: float | None = budget.task.env_step_cost_s
    step_source = "task.env_step_cost"
    if step_cost is None:
        step_cost, step_source = env.step_cost_s, "measured on this host"
    why = ""
    if budget.task.env_step_cost_s is not None and budget.task.env_step_cost_s >= EXPENSIVE_STEP_S:
        why = f"task.env_step_cost is {units.format_time(budget.task.env_step_cost_s)} per step"
    elif budget.training.env_steps is not None:
        model_free = [
            get_hyperparams(a.id, env.env_id).n_timesteps
            for a in usable
            if not a.model_based and a.trainable
        ]
        if model_free and budget.training.env_steps < 0.5 * min(model_free):
            why = (
                f"training.env_steps ({units.format_count(budget.training.env_steps)}) is under "
                f"half of what the cheapest model-free option typically needs "
                f"({units.format_count(min(model_free))})"
            )
    if not why:
        why = _model_free_out_of_reach(budget, env, usable, cal)
    return Context(
        device_class=device.device_class,
        mcu=mcu,
        eight_bit=word_bits(device) == 8,
        tight_memory=tight,
        expensive_env=bool(why),
        expensive_why=why,
        step_cost_s=step_cost,
        step_cost_source=step_source,
        cores=budget.training.cores or 1,
        target_return=target_return(budget.task, env.env_id, env.reward_threshold).value,
        sparse_reward=sparse_reason(env.env_id, budget.task.sparse_reward),
        prior=prior_knowledge(budget),
    )


def prior_knowledge(budget: Budget) -> str | None:
    """What the budget says a run may start from, in words (None: nothing)."""
    task = budget.task
    parts = [f"task.teacher {task.teacher}" if task.teacher else "",
             f"task.demos {task.demos}" if task.demos else ""]  # fmt: skip
    return ", ".join(p for p in parts if p) or None


def _model_free_out_of_reach(
    budget: Budget, env: EnvSpec, usable: Sequence[AlgorithmInfo], cal: Calibration | None
) -> str:
    """Why no trainable model-free option can train as long as it typically needs within
    ``training.env_steps`` and ``training.time`` (its steps at its host throughput, at its
    cheapest measured width, plus the declared env step cost), or "" when one can (or no
    limit is set)."""
    t = budget.training
    if t.env_steps is None and t.time_s is None:
        return ""
    cost = budget.task.env_step_cost_s or 0.0
    short = []
    for a in usable:
        if a.model_based or not a.trainable:
            continue
        steps, per_step = quickest(a, env, cal)
        seconds = steps * (per_step + cost)
        if (t.env_steps is None or steps <= t.env_steps) and (
            t.time_s is None or seconds <= t.time_s
        ):
            return ""
        short.append((seconds, steps, a.id))
    if not short:
        return ""
    seconds, steps, fastest = min(short)
    limits = " and ".join(
        f"{name} ({value})"
        for name, value, on in (
            ("training.env_steps", units.format_count(t.env_steps or 0), t.env_steps is not None),
            ("training.time", units.format_time(t.time_s or 0.0), t.time_s is not None),
        )
        if on
    )
    return (
        f"no model-free option fits its typical training in {limits}: the quickest, "
        f"{fastest}, needs {units.format_count(steps)} steps, ≈{units.format_time(seconds)}"
    )


def word_bits(device: Device) -> int:
    bits = getattr(device, "word_bits", None)
    if isinstance(bits, int):
        return bits
    return 8 if "avr" in device.core.lower() else 32


def rule(rule_id: str, detail: str = "") -> str:
    text = RULES[rule_id].text
    return f"[{rule_id}] {detail or text}"


def preference(
    info: AlgorithmInfo, env: EnvSpec, ctx: Context, body: Body
) -> tuple[float, list[str]]:
    """Preference from the rules (higher first) and the sentences that fired."""
    score = 0.0
    reasons: list[str] = []
    small = body.kind in ("table", "linear")
    if env.observation.kind == "discrete" and body.kind == "table":
        score += 3
        reasons.append(rule("discrete-obs"))
    if ctx.mcu or ctx.tight_memory:
        if small:
            score += 2
            reasons.append(rule("mcu-small"))
        else:
            score -= 1
            reasons.append(
                rule("mcu-small", "MCU-class or tight memory: an int8 MLP only if it fits.")
            )
    elif body.kind == "mlp":
        score += 2
        reasons.append(rule("headroom"))
    elif body.kind == "table" and env.observation.kind == "box":
        score -= 1  # a discretized grid is a last resort when an MLP fits comfortably
    if env.action.kind == "box":
        if info.id in ("sac", "td3", "lean-sac", "lean-td3"):
            score += 1
            reasons.append(rule("continuous-actions"))
        elif info.id == "ars" and (ctx.mcu or ctx.tight_memory):
            score += 0.5
            reasons.append(rule("continuous-actions"))
    elif info.id == "ppo" and body.kind == "mlp":
        score += 0.5  # the most robust discrete-action default in RL Zoo
    if info.id == "sarsa-lambda":
        score += 0.5  # tile coding generalizes across a Box observation; a grid does not
    if info.model_based and info.trainable:
        score += 0 if ctx.expensive_env else -2
        score -= 0.25 if info.id == "mbpo" else 0  # PETS first (the rule says why)
        reasons.append(rule("model-based"))
    if ctx.expensive_env:
        if info.model_based:
            score += 3
        elif info.off_policy:
            score += 1.5
        else:
            score -= 1
        reasons.append(
            rule(
                "expensive-env",
                f"Expensive env ({ctx.expensive_why}): "
                + RULES["expensive-env"].text[len("Expensive environment: ") :],
            )
        )
    if info.family == "imitation" and ctx.prior:
        score += 10  # ahead of every option that starts from zero
        if info.id == "dagger":
            score += 0.5  # with a teacher, DAgger also learns the student's own states
        reasons.append(rule("prior-knowledge", f"{RULES['prior-knowledge'].text} ({ctx.prior})"))
    if not info.trainable:
        reasons.append(rule("not-yet"))
    if ctx.sparse_reward:
        on = ", ".join(f"{k} = {v:g}" for k, v in bonus(info.id).items())
        offered = " ".join(f"-p {k}={v:g}" for k, v in bonus(info.id, planned=False).items())
        then = (f"turned on: {on}" if on
                else f"not turned on (not measured to help here; to try it: {offered})"
                if offered else f"{info.id} has none in rlbudget")  # fmt: skip
        reasons.append(rule("sparse-reward", f"Sparse reward ({ctx.sparse_reward}): an "
                            f"exploration bonus for training only, {then}."))  # fmt: skip
    return score, reasons
