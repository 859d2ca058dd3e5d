"""``rlbudget show``, ``evaluate``, ``import``, ``compress`` and ``export``: one policy
folder in, a summary, returns, a new policy folder or deployable code out."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from rlbudget.cli import common
from rlbudget.cli.bandit_commands import ContextOpt
from rlbudget.cli.common import GymPackageOpt, JsonOpt, PhysicsOpt, handles_errors, ints


@handles_errors
def show(
    policy: Annotated[
        Path, typer.Argument(help="A policy folder (policy.json + policy.safetensors).")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Show a policy: structure, sizes by dtype, MACs per decision, provenance.

    Example: rlbudget show runs/cartpole/policy --json
    """
    from rlbudget.policy import load_policy

    info = load_policy(policy).summary()
    if json_out:
        common.print_json(info)
        return
    from rlbudget.render import render_policy

    render_policy(common.out, info, policy)


@handles_errors
def evaluate(
    policy: Annotated[Path, typer.Argument(help="A policy folder.")],
    env: Annotated[
        str | None,
        typer.Option("--env", help="Gymnasium id; default: the env in the policy's provenance."),
    ] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1, help="Episodes.")] = 10,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the first reset.")] = 0,
    gym_package: GymPackageOpt = None,
    json_out: JsonOpt = False,
    planner: Annotated[
        bool,
        typer.Option(
            "--planner",
            help="A pets run: act with its planner (the model in the "
            "run folder, torch, on the host) instead of the distilled policy.",
        ),
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Logged bandit decisions (.csv/.parquet: context columns, "
            "action, reward, propensity): estimate the policy's value off-policy "
            "(IPS, SNIPS, DR with 95 % intervals) instead of running episodes.",
            show_default=False,
        ),
    ] = None,
    context: ContextOpt = None,
    clip: Annotated[
        float | None,
        typer.Option(
            "--clip",
            min=1.0,
            help="With --data: cap the importance weights (less variance, some bias).",
            show_default=False,
        ),
    ] = None,
    env_kwargs: PhysicsOpt = None,
) -> None:
    """Run a policy with the numpy runtime (no torch) and report its episode returns, or
    (--data) estimate a bandit policy's value from logged decisions.

    Examples:

      rlbudget evaluate runs/frozenlake/policy --episodes 100 --json

      rlbudget evaluate runs/dr/policy --data logs.csv
    """
    if data is not None:
        from rlbudget.cli.bandit_commands import evaluate_data

        evaluate_data(policy, data, context=context, clip=clip, json_out=json_out)
        return
    from rlbudget.env_kwargs import parse_env_kwargs, policy_physics
    from rlbudget.policy import load_policy
    from rlbudget.profile.evaluate import evaluate as run_evaluation
    from rlbudget.profile.evaluate import policy_env

    given = parse_env_kwargs(env_kwargs, "--env-kwargs")
    p = load_policy(policy)
    act = None
    if planner:
        from rlbudget.agents.model_based.host import planner_for

        act = planner_for(policy, seed=seed)
    env_id = policy_env(p, env, str(policy))
    with policy_physics(p, env_id, given):
        result = run_evaluation(p, env_id, episodes=episodes, seed=seed,
                                gym_packages=gym_package or (), act=act)  # fmt: skip
    if json_out:
        common.print_json(result.to_dict())
        return
    from rlbudget.render import render_evaluation

    render_evaluation(common.out, result)


@handles_errors
def import_(
    model: Annotated[
        Path,
        typer.Argument(
            help="An SB3 / sb3-contrib model .zip, or an RL Zoo folder (zip, config.yml, "
            "vecnormalize.pkl).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Policy folder to write.", show_default=False)
    ],
    env: Annotated[
        str | None,
        typer.Option("--env", help="Gymnasium id; checked against the model's spaces, recorded."),
    ] = None,
    vecnormalize: Annotated[
        Path | None,
        typer.Option("--vecnormalize", help="VecNormalize statistics (VecNormalize.save file)."),
    ] = None,
    algo: Annotated[
        str | None,
        typer.Option("--algo", help="Algorithm, when the zip cannot tell (ppo, a2c, trpo)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a Stable-Baselines3 model as a numpy policy, without unpickling anything.

    Reads the zip's JSON and weights only (torch weights-only loader); VecNormalize
    statistics are read with an allow-list unpickler. The model's own code never runs.

    Examples:

      rlbudget import ppo-CartPole-v1/ -o policies/cartpole

      rlbudget import model.zip --env Pendulum-v1 --vecnormalize vecnormalize.pkl -o pol
    """
    from rlbudget.policy import save_policy
    from rlbudget.sb3.importer import import_model

    result = import_model(model, env_id=env, vecnormalize=vecnormalize, algorithm=algo)
    save_policy(result.policy, output, parents=True)
    info = result.to_dict()
    if json_out:
        common.print_json({**info, "output": str(output)})
        return
    from rlbudget.render import render_import

    render_import(common.out, info)
    for w in info["warnings"]:
        common.warn(w)
    common.out.print(f"policy written to {output}")


class Requantize(str, Enum):
    """``rlbudget compress --requantize``."""

    auto = "auto"
    tflite = "tflite"


@handles_errors
def compress(
    policy: Annotated[Path, typer.Argument(help="A policy folder.", show_default=False)],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            "-m",
            show_default=False,
            help="Methods, applied in order (e.g. prune-neurons,int8): MLPs: int8, fp16, prune, "
            "prune-neurons, distill; int8 MLPs: tflite-rounding, prune, distill; tables: pack, "
            "drop-unvisited; linear: int8, int16, distill.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Policy folder to write.", show_default=False)
    ],
    env: Annotated[
        str | None,
        typer.Option("--env", help="Gymnasium id; default: the env in the policy's provenance."),
    ] = None,
    max_return_drop: Annotated[
        str,
        typer.Option(
            "--max-return-drop",
            help="Largest acceptable drop of the mean return and of the worst 5 % of "
            "episodes' (CVaR): 5% or 0.05.",
        ),
    ] = "5%",
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes",
            "-n",
            min=1,
            show_default=False,
            help="Episodes per return measurement, episode i seeded seed+i for both "
            "[about 50,000 env steps, 100 to 1,000 episodes].",
        ),
    ] = None,
    states: Annotated[
        int, typer.Option("--states", min=1, help="Visited states per step (agreement, int8).")
    ] = 5000,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of episodes and distillation.")
    ] = 0,
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="int8: observations (.npy) instead of visited ones."),
    ] = None,
    requantize: Annotated[
        Requantize | None,
        typer.Option(
            "--requantize",
            show_default=False,
            help="int8: tflite: every layer rounds twice, as TFLite Micro (export --format "
            "tflite needs it); auto: one rounding where exact, smaller C [auto].",
        ),
    ] = None,
    sparsity: Annotated[
        float | None,
        typer.Option("--sparsity", help="prune: fraction of weights set to zero [0.5]."),
    ] = None,
    keep: Annotated[
        float | None,
        typer.Option("--keep", help="prune-neurons: fraction of hidden neurons kept [0.5]."),
    ] = None,
    neurons: Annotated[
        str | None,
        typer.Option("--neurons", help="prune-neurons: neurons kept per hidden layer, e.g. 16,16."),
    ] = None,
    widths: Annotated[
        str | None,
        typer.Option(
            "--widths",
            help="distill, cascade: student hidden widths, e.g. 8,8 (distill: or --budget).",
        ),
    ] = None,
    budget: Annotated[
        Path | None,
        typer.Option("--budget", help="distill: choose the student's widths to fit this budget."),
    ] = None,
    default_action: Annotated[
        int | None,
        typer.Option("--default-action", help="drop-unvisited: action of unvisited states."),
    ] = None,
    recover: Annotated[
        bool,
        typer.Option(
            "--recover",
            help="Fine-tune after prune/prune-neurons from the unpruned parent (distillation).",
        ),
    ] = False,
    env_kwargs: PhysicsOpt = None,
    gym_package: GymPackageOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compress a policy and judge every step by the return it keeps.

    Each step reports bytes and MACs before and after, action agreement with its parent
    on states the parent visits, and the return before and after over the same seeded
    episodes (paired). The gate holds both the mean return and the worst 5 % of episodes
    (CVaR) to --max-return-drop of the input's; the result is written even when it fails,
    and the command then exits 1.

    Examples:

      rlbudget compress runs/ppo/policy -m int8 -o runs/ppo/int8

      rlbudget compress ppo -m int8 --requantize tflite -o tflm

      rlbudget compress ppo -m prune-neurons,int8 --keep 0.25 --recover -o small

      rlbudget compress ppo -m distill --widths 8,8 -o student --json

      rlbudget compress frozenlake -m pack,drop-unvisited -o packed
    """
    from rlbudget.compress import check_output
    from rlbudget.compress.pipeline import MethodOptions, parse_fraction
    from rlbudget.compress.pipeline import compress as run_compress
    from rlbudget.env_kwargs import parse_env_kwargs, policy_physics
    from rlbudget.fileio import load_npy
    from rlbudget.policy import load_policy, save_policy
    from rlbudget.profile.evaluate import policy_env

    drop = parse_fraction(max_return_drop)
    given = parse_env_kwargs(env_kwargs, "--env-kwargs")
    check_output(policy, output)
    p = load_policy(policy)
    env_id = policy_env(p, env, str(policy))
    loaded_budget = None
    if budget is not None:
        from rlbudget.budget import load_budget

        loaded_budget = load_budget(budget)
    options = MethodOptions(
        calibration_obs=None if calibration is None else load_npy(
            calibration, f"--calibration {calibration}"),
        requantize=None if requantize is None else requantize.value,
        sparsity=sparsity, keep=keep, neurons=ints(neurons, "--neurons"),
        widths=ints(widths, "--widths"), budget=loaded_budget,
        default_action=default_action, recover=recover,
    )  # fmt: skip
    with policy_physics(p, env_id, given):
        report = run_compress(p, method, env_id, episodes=episodes, states=states, seed=seed,
                              max_return_drop=drop, options=options,
                              gym_packages=gym_package or ())  # fmt: skip
    save_policy(report.policy, output, parents=True)
    if json_out:
        common.print_json({**report.to_dict(), "output": str(output)})
    else:
        from rlbudget.render import render_compress

        render_compress(common.out, report, output)
    if not report.passed:
        raise typer.Exit(1)


class ExportFormat(str, Enum):
    """``rlbudget export --format``."""

    c = "c"
    onnx = "onnx"
    tflite = "tflite"


@handles_errors
def export(
    policy: Annotated[Path, typer.Argument(help="A policy folder.", show_default=False)],
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="c: C99 source (policy.h, policy.c, main.c); "
            "onnx: policy.onnx (pip install 'rlbudget[onnx]'); "
            "tflite: policy.tflite for TFLite Micro / LiteRT (pip install 'rlbudget[tflite]').",
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder to write.", show_default=False)
    ],
    allow_rounding_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-rounding-mismatch",
            help="tflite: write an int8 policy whose layers round once ('high_word', "
            "compress's default), which TFLite Micro computes otherwise (LiteRT's reference "
            "kernels as the policy); refused without it.",
        ),
    ] = False,
    learn: Annotated[
        bool,
        typer.Option(
            "--learn",
            help="c: keep learning on the device: values in RAM, rlb_policy_learn, "
            "rlb_policy_act_explore, rlb_policy_reset, rlb_policy_state (learn.h). Tabular "
            "Q-learning/SARSA or tile-coded Sarsa(lambda) policies trained by rlbudget; "
            "alpha, gamma, lambda, epsilon from the policy's training config.",
        ),
    ] = False,
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype",
            metavar="<float32|q16.16>",
            help="--learn: the learner's numbers: float32 (a core with an FPU) or q16.16 "
            "(saturating fixed point, for cores without one). Default: the --device's "
            "choice, else float32.",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            metavar="<device>",
            help="--learn: the target (rlbudget devices): q16.16 where it has no FPU.",
        ),
    ] = None,
    learn_param: Annotated[
        list[str] | None,
        typer.Option(
            "--learn-param",
            metavar="<name=value>",
            help="--learn: override a hyperparameter, NAME=VALUE (alpha, gamma, lam, epsilon, "
            "seed); repeatable.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export a policy (preprocess, body and head) as C99, ONNX or TFLite.

    C: weights as const arrays (flash), static buffers (RAM), no malloc; the report gives
    both sizes and whether libm is needed, and, when arm-none-eabi-gcc is installed, the
    .text/.data/.bss of policy.c compiled for Cortex-M0+ and M4F. main.c is a harness:
    observations on stdin, actions on stdout.

    Examples:

      rlbudget export runs/ppo/int8 --format c -o firmware/policy

      rlbudget export runs/ppo/policy --format onnx -o onnx/ --json

      rlbudget export runs/ppo/tflm --format tflite -o tflite/

    TFLite: an int8 policy must round as TFLite Micro does (compress -m int8 --requantize
    tflite, or -m tflite-rounding of an int8 policy); else the export is refused.
    """
    from rlbudget.compress import gate_warning
    from rlbudget.errors import PolicyError
    from rlbudget.policy import load_policy

    if allow_rounding_mismatch and fmt is not ExportFormat.tflite:
        raise PolicyError("--allow-rounding-mismatch applies to --format tflite only; drop it")
    if (learn_param or dtype or device) and not learn:
        raise PolicyError("--dtype, --device and --learn-param apply to --learn only; add "
                          "--learn")  # fmt: skip
    if learn and fmt is not ExportFormat.c:
        raise PolicyError("--learn applies to --format c only; use --format c")
    p = load_policy(policy)
    warning = gate_warning(p, str(policy))
    if warning is not None:
        common.err.print(warning, markup=False)
    info: dict[str, Any]
    if fmt is ExportFormat.c:
        from rlbudget.export.arm import cortex_m_sizes, sizes_to_dict
        from rlbudget.export.c import export_c

        if learn:
            from rlbudget.agents.learner import learn_params
            from rlbudget.devices import get_device
            from rlbudget.export.learn import export_learner, learner_dtype

            params = learn_params(p, **_overrides(learn_param or []))
            if dtype is None:
                dtype = learner_dtype(get_device(device).fpu) if device else "float32"
            info = export_learner(p, output, params, dtype, parents=True).to_dict()
            info["learner"] = {"dtype": dtype, "algorithm": params.algorithm,
                               "alpha": params.alpha, "gamma": params.gamma,
                               "lambda": params.lam, "epsilon": params.epsilon,
                               "seed": params.seed, "source": params.source}  # fmt: skip
        else:
            info = export_c(p, output, parents=True).to_dict()
        info["cortex_m"] = sizes_to_dict(cortex_m_sizes(output))
    elif fmt is ExportFormat.tflite:
        from rlbudget.export.tflite import export_tflite

        info = export_tflite(p, output, allow_rounding_mismatch=allow_rounding_mismatch,
                             name=str(policy)).to_dict()  # fmt: skip
        for line in info["warnings"]:
            common.warn(line)
    else:
        from rlbudget.export.onnx import export_onnx

        info = export_onnx(p, output).to_dict()
    info = {"format": fmt.value, **info}
    if json_out:
        common.print_json(info)
        return
    from rlbudget.render import render_export

    render_export(common.out, info)


def _overrides(items: list[str]) -> dict[str, float]:
    """``--learn-param NAME=VALUE`` items as a dict (one clear error for a bad one)."""
    from rlbudget.errors import PolicyError

    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in ("alpha", "gamma", "lam", "epsilon", "seed"):
            raise PolicyError(f"--learn-param '{item}': expected NAME=VALUE with NAME one of "
                              "alpha, gamma, lam, epsilon, seed")  # fmt: skip
        try:
            out[name] = float(value) if name != "seed" else int(value)
        except ValueError:
            raise PolicyError(f"--learn-param '{item}': '{value}' is not a number") from None
    return out


@handles_errors
def import_state(
    state: Annotated[
        Path,
        typer.Argument(help="A learner's dump (rlb_policy_state's bytes).", show_default=False),
    ],
    policy: Annotated[
        Path,
        typer.Option(
            "--policy", "-p", help="The policy folder it was exported from.", show_default=False
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Policy folder to write.", show_default=False)
    ],
    json_out: JsonOpt = False,
) -> None:
    """Read a device's learned state back into a policy folder.

    STATE.bin is the bytes rlb_policy_state() hands out (export --format c --learn; the
    layout is in learn.h): a header naming the policy it belongs to, then the values. A
    dump that is truncated, corrupt or of another policy is refused.

    Example:

      rlbudget import-state field/STATE.bin --policy runs/q/policy -o runs/q/learned
    """
    from rlbudget.agents.learner import HEADER_WORDS, read_state, shipped_values
    from rlbudget.compress import check_output
    from rlbudget.fileio import read_capped
    from rlbudget.policy import load_policy, save_policy

    check_output(policy, output)  # not over the policy the device's dump is checked against
    p = load_policy(policy)
    shipped_values(p)  # a policy no learner was exported from: say so before reading
    limit = 4 * HEADER_WORDS + 8 * p.parameters  # a header, values and traces at most
    data = read_capped(state, limit, "a learner state of this policy")
    learned = read_state(data, p, str(state))
    save_policy(learned.policy, output, parents=True)
    info = {**learned.to_dict(), "output": str(output)}
    if json_out:
        common.print_json(info)
        return
    common.out.print(f"wrote {output}: {learned.dtype} values after {learned.steps:,} learn "
                     "calls")  # fmt: skip
