"""Training runs: limits, early stop, and the run folder.

``resolve`` decides what to train (algorithm, env, hyperparameters with their source,
step budget, target); ``train_run`` runs the agent and stops at the first of

- the step budget: ``training.env_steps`` from the budget, else the hyperparameter
  file's ``n_timesteps`` for this env (tuned, or the generic default — said which);
- ``training.time`` (checked at the end of each episode);
- the target return (``task.min_return``, else the env's ``reward_threshold``), in two
  stages (:func:`target_met`): every ``eval_every`` steps the greedy policy is screened
  over ``eval_episodes`` (100) episodes on a separate evaluation env; when the screen's
  mean reaches the target, the policy is confirmed on fresh episodes, as many as the
  final measurement of ``rlbudget run`` takes (:func:`rlbudget.profile.evaluate.default_episodes`:
  100 to 1,000, e.g. 500 for FrozenLake), and training stops only when the 95 % lower
  confidence bound of their mean return is at or above the target. A policy stopped
  this way meets the target on fresh episodes (``benchmarks/early_stop.py``), where a
  100-episode screen alone stops on lucky evaluations;

and writes the run folder::

    RUN_DIR/policy/        the trained policy (policy.json + policy.safetensors)
    RUN_DIR/config.yaml    everything resolved: algorithm, env, seed, hyperparameters
                           (with their source), limits, versions
    RUN_DIR/metrics.csv    step, episode, return, length, wall_s, exploration
    RUN_DIR/summary.json   why it stopped, steps, wall time, steps/s, the screens' returns
    RUN_DIR/curve.png      the learning curve (train_run(curve=False): drawn later from the
                           folder by draw_curve)

Every file is written atomically, and ``RUN_DIR/checkpoint/`` is kept (every
``checkpoint_every`` steps and at the stop; ARS at iteration boundaries, SB3 at rollout
boundaries) so that ``resume=True`` continues (exactly for the built-in agents; for
Stable-Baselines3 see :mod:`rlbudget.sb3.checkpoint` for what a resume reproduces);
Ctrl-C/SIGTERM stop a run cleanly with everything saved. summary.json also holds the
run's ``peak_rss_bytes`` (psutil, sampled every 0.2 s), ``rapl_energy_j`` (the CPU
package's RAPL counter where the host has one, else null), ``wall_s`` and ``cpu_s`` (process
CPU time), accumulated over resumes.

Stable-Baselines3 algorithms (PPO, A2C, DQN, SAC, TD3; QR-DQN, TQC, TRPO with
``rlbudget[contrib]``) run through the same ``train_run``: :func:`resolve` also fixes
their ``n_envs``, torch threads (``training.cores``, default 1) and replay capacity
(:func:`rlbudget.replay.replay_buffer`, from ``training.ram``), all written to config.yaml.

The package, by concern: :mod:`~rlbudget.train.settings` (what to train: resolving the
settings, reading a plan, config.yaml), :mod:`~rlbudget.train.loop` (the loop and its
limits, the early stop), :mod:`~rlbudget.train.folder` (the run folder: what is written
and read back), :mod:`~rlbudget.train.meters` (memory, energy, progress, TensorBoard).
"""

from rlbudget.train.folder import (
    TargetCheck,
    TrainSummary,
    locate_run,
    prepare_run_dir,
    read_summary,
    start_step,
)
from rlbudget.train.loop import RunResult, confirm_episodes, draw_curve, target_met, train_run
from rlbudget.train.meters import PeakRSS, ProgressLog, RaplEnergy, TensorBoardLog
from rlbudget.train.settings import (
    Limits,
    RunSettings,
    check_spaces,
    load_settings,
    parse_hyperparams,
    read_plan,
    resolve,
    run_settings,
)

__all__ = [
    "Limits",
    "PeakRSS",
    "ProgressLog",
    "RaplEnergy",
    "RunResult",
    "RunSettings",
    "TargetCheck",
    "TensorBoardLog",
    "TrainSummary",
    "check_spaces",
    "confirm_episodes",
    "draw_curve",
    "load_settings",
    "locate_run",
    "parse_hyperparams",
    "prepare_run_dir",
    "read_plan",
    "read_summary",
    "resolve",
    "run_settings",
    "start_step",
    "target_met",
    "train_run",
]
