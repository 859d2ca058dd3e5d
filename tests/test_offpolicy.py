"""lean-sac and lean-td3 (issue 18): the built-in off-policy trainers on tiny settings.

8-unit networks and batches of 32 on a few hundred Pendulum steps take about a second; what
is asserted does not depend on the policy being good: step counts, bit-equal resumes, the
deployed policy against the torch actor, the NaN guard's messages. Reaching −200 is slow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import register

from rlbudget.agents.offpolicy import (
    Nets,
    OffPolicyConfig,
    deterministic_action,
    train_offpolicy,
)
from rlbudget.errors import EnvError, TrainingError
from rlbudget.finite import NonFiniteError

TINY: dict[str, Any] = {"net_arch": [8, 8], "batch_size": 32, "learning_starts": 50}
ALGOS = ("lean-sac", "lean-td3")


class NanActionPendulum(gym.Wrapper[Any, Any, Any, Any]):
    """Pendulum whose 230th step (over the instance's life) returns a NaN reward."""

    def __init__(self) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.total = 0

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.total += 1
        return obs, float("nan") if self.total == 230 else reward, terminated, truncated, info


register(id="NanPendulum-v0", entry_point="tests.test_offpolicy:NanActionPendulum",
         max_episode_steps=200)  # fmt: skip


def _stop_after(n: int) -> Any:
    calls = {"n": 0}

    def stop() -> bool:  # checked before every step
        calls["n"] += 1
        return calls["n"] > n

    return stop


@pytest.mark.parametrize("algo", ALGOS)
def test_stops_on_the_env_step_budget(algo: str) -> None:
    # 250 steps: one 200-step Pendulum episode and 50 steps of a second that the budget cuts
    result = train_offpolicy("Pendulum-v1", OffPolicyConfig(algorithm=algo, n_timesteps=250,
                                                            **TINY))  # fmt: skip
    assert result.steps == 250
    assert [(e.step, e.length) for e in result.episodes] == [(200, 200)]
    assert result.checkpoint is not None
    assert result.checkpoint.state["size"] == 250  # every transition is in the buffer
    assert result.checkpoint.arrays["buffer"].shape == (250, 3 + 1 + 1 + 3 + 1)  # s a r s2 d
    # 200 updates (steps 50..249); SAC's actor takes each, TD3's every second one
    assert result.checkpoint.state["n_update"] == 200
    assert result.checkpoint.state["t_critic"] == 200
    assert result.checkpoint.state["t_actor"] == (200 if algo == "lean-sac" else 100)


@pytest.mark.parametrize(
    ("algo", "noise"), [("lean-sac", "normal"), ("lean-td3", "normal"),
                        ("lean-td3", "ornstein-uhlenbeck"), ("lean-td3", "pink")],
)  # fmt: skip
def test_resume_equals_straight_run(algo: str, noise: str) -> None:
    cfg = OffPolicyConfig(algorithm=algo, n_timesteps=260, noise_type=noise, **TINY)
    straight = train_offpolicy("Pendulum-v1", cfg)
    first = train_offpolicy("Pendulum-v1", cfg, should_stop=_stop_after(130))  # mid-episode
    assert first.steps == 130 and first.checkpoint is not None
    assert first.checkpoint.state["steps"] == 130
    resumed = train_offpolicy("Pendulum-v1", cfg, resume=first.checkpoint)
    assert resumed.steps == 260
    assert [e.ret for e in resumed.episodes] == [e.ret for e in straight.episodes]
    assert straight.checkpoint is not None and resumed.checkpoint is not None
    a, b = straight.checkpoint.arrays, resumed.checkpoint.arrays
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    p, q = straight.policy.arrays(), resumed.policy.arrays()
    assert all(np.array_equal(p[k], q[k]) for k in p)


def test_checkpoints_on_schedule_resume_through_a_saved_folder(tmp_path: Path) -> None:
    from rlbudget.agents.common import Checkpoint

    cfg = OffPolicyConfig(n_timesteps=240, **TINY)
    saved: list[int] = []

    def keep(ck: Checkpoint) -> None:
        saved.append(int(ck.state["steps"]))
        ck.save(tmp_path / "ck")

    straight = train_offpolicy("Pendulum-v1", cfg, on_checkpoint=keep, checkpoint_every=100)
    assert saved == [100, 200]
    resumed = train_offpolicy("Pendulum-v1", cfg, resume=Checkpoint.load(tmp_path / "ck"))
    p, q = straight.policy.arrays(), resumed.policy.arrays()
    assert all(np.array_equal(p[k], q[k]) for k in p)


@pytest.mark.parametrize("algo", ALGOS)
def test_deployed_policy_is_the_deterministic_actor(algo: str) -> None:
    cfg = OffPolicyConfig(algorithm=algo, n_timesteps=150, **TINY)
    result = train_offpolicy("Pendulum-v1", cfg)
    policy = result.policy
    assert policy.head.kind == "tanh_rescale" and policy.preprocess == ()
    assert [la.W.shape for la in policy.body.layers] == [(3, 8), (8, 8), (8, 1)]  # type: ignore[union-attr]
    nets = Nets(cfg, 3, 1)
    assert result.checkpoint is not None
    nets.load(result.checkpoint.arrays, result.checkpoint.state)
    obs = np.random.default_rng(0).uniform([-1, -1, -8], [1, 1, 8], (64, 3)).astype(np.float32)
    actor_action = deterministic_action(nets, obs) * 2.0  # Pendulum: [-2, 2]
    np.testing.assert_allclose(policy.act(obs), actor_action, rtol=0, atol=2e-6)
    # the actions differ between observations: the actor is not a constant
    assert np.ptp(policy.act(obs)) > 1e-3


def test_env_nan_stops_training_with_the_guards_message() -> None:
    cfg = OffPolicyConfig(n_timesteps=300, **TINY)
    with pytest.raises(NonFiniteError, match=r"returned reward nan at env step 230 "
                       r"\(step 30 of episode 2\)"):  # fmt: skip
        train_offpolicy("NanPendulum-v0", cfg)


def test_diverging_weights_stop_training() -> None:
    cfg = OffPolicyConfig(n_timesteps=300, learning_rate=float("inf"), **TINY)
    with pytest.raises(TrainingError) as err:
        train_offpolicy("Pendulum-v1", cfg)
    # the first update (after step 51) makes every weight NaN; the actor acts at step 52
    assert str(err.value) == ("lean-sac: training diverged at step 52: the actor's action "
                              "became [nan] (lower learning_rate)")  # fmt: skip


def test_refuses_discrete_actions() -> None:
    with pytest.raises(EnvError) as err:
        train_offpolicy("CartPole-v1", OffPolicyConfig(algorithm="lean-td3", n_timesteps=10))
    assert str(err.value) == ("environment 'CartPole-v1': lean-td3 needs Box observations "
                              "and Box actions with finite bounds")  # fmt: skip


def test_train_run_writes_a_run_folder_and_uses_training_cores(tmp_path: Path) -> None:
    from rlbudget.policy import load_policy
    from rlbudget.train import resolve, train_run

    settings = resolve("lean-td3", "Pendulum-v1", env_steps=220, overrides=TINY, cores=2)
    assert settings.hyperparameters["threads"] == 2 and settings.torch_threads == 2
    run = train_run(settings, tmp_path / "run")
    assert run.steps == 220 and run.stopped_by == "steps"
    policy = load_policy(tmp_path / "run" / "policy")
    assert policy.provenance["algorithm"] == "lean-td3"
    assert policy.provenance["hyperparameters"]["net_arch"] == [8, 8]
    resumed = train_run(resolve("lean-td3", "Pendulum-v1", env_steps=300, overrides=TINY,
                                cores=2), tmp_path / "run", resume=True)  # fmt: skip
    assert resumed.steps == 300


@pytest.mark.slow
def test_lean_sac_reaches_minus_200_on_pendulum(tmp_path: Path) -> None:
    from rlbudget.profile.evaluate import evaluate
    from rlbudget.train import resolve, train_run

    settings = resolve("lean-sac", "Pendulum-v1", min_return=-200.0)
    run = train_run(settings, tmp_path / "run")
    assert run.stopped_by == "target", run.to_dict()
    from rlbudget.policy import load_policy

    policy = load_policy(tmp_path / "run" / "policy")
    assert evaluate(policy, "Pendulum-v1", episodes=50, seed=123).return_mean >= -200


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # was ZeroDivisionError (exit 3)
        ({"train_freq": 0}, "lean-td3: hyperparameter train_freq = 0; write a whole number "
         "of at least 1"),
        ({"net_arch": [0]}, "lean-td3: hyperparameter net_arch[0] = 0; write a whole number "
         "of at least 1"),
        # was a NaN loss reported as divergence; -1 gradient steps trained nothing silently
        ({"batch_size": 0}, "lean-td3: hyperparameter batch_size = 0; write a whole number "
         "of at least 1"),
        ({"gradient_steps": -1}, "lean-td3: hyperparameter gradient_steps = -1; write a whole "
         "number of at least 1"),
        ({"tau": 2.0}, "lean-td3: tau = 2.0, gamma = 0.99; tau must lie in (0, 1] and gamma "
         "in [0, 1]"),
        ({"noise_type": "brown"}, "lean-td3: hyperparameter noise_type = 'brown'; write one of "
         "normal, ornstein-uhlenbeck, pink"),
    ],
)  # fmt: skip
def test_bad_counts_are_one_line(change: dict[str, Any], expected: str) -> None:
    from rlbudget.errors import PlanError

    cfg = OffPolicyConfig("lean-td3", n_timesteps=10, **change)
    with pytest.raises(PlanError) as info:
        train_offpolicy("Pendulum-v1", cfg)
    assert str(info.value) == expected


def test_bad_count_on_the_command_line_writes_no_run_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rlbudget.cli import app

    out = tmp_path / "run"  # was left with config.yaml and metrics.csv
    r = CliRunner().invoke(app, ["train", "--algo", "lean-td3", "--env", "Pendulum-v1", "-n",
                                 "300", "-p", "train_freq=0", "-o", str(out)])  # fmt: skip
    assert r.exit_code == 2, r.output
    assert r.stderr == ("error: lean-td3: hyperparameter train_freq = 0; write a whole number "
                        "of at least 1\n")  # fmt: skip
    assert not out.exists()


# --- the hand-written gradients against torch's autograd -------------------------------------


def _torch_losses(torch: Any, nets: Nets, theta: Any, batch: list[Any], noise: list[Any],
                  cfg: OffPolicyConfig, target_entropy: float) -> tuple[Any, Any, Any]:  # fmt: skip
    """The losses of the SAC and TD3 papers, written with torch (float64) from the same
    weights: (critics' loss, actor's loss, log α's loss)."""
    from rlbudget.agents.offpolicy import layer_shapes, param_views

    hidden = list(cfg.net_arch)
    out_dim = 2 * nets.act_dim if nets.sac else nets.act_dim
    c_shapes = layer_shapes([nets.obs_dim + nets.act_dim, *hidden, 1], copies=2)
    a_shapes = layer_shapes([nets.obs_dim, *hidden, out_dim])
    n_c = nets.n_critic
    critic, actor = param_views(theta[:n_c], c_shapes), param_views(theta[n_c:-1], a_shapes)
    log_alpha = theta[-1]
    critic_t = param_views(torch.tensor(nets.critic_target_flat, dtype=torch.float64), c_shapes)
    actor_t = param_views(torch.tensor(nets.actor_target_flat, dtype=torch.float64), a_shapes)
    act = torch.relu if cfg.activation_fn == "relu" else torch.tanh

    def mlp(params: list[Any], x: Any) -> Any:
        for i in range(0, len(params), 2):
            x = x @ params[i] + params[i + 1]
            if i < len(params) - 2:
                x = act(x)
        return x

    def q(params: list[Any], s: Any, a: Any) -> Any:  # [2, batch, 1]
        return mlp(params, torch.cat((s, a), 1))

    def sample(s: Any, eps: Any) -> tuple[Any, Any]:
        out = mlp(actor, s)
        mean, raw = out[:, : nets.act_dim], out[:, nets.act_dim :]
        log_std = -5.0 + 3.5 * (torch.tanh(raw) + 1)
        a = torch.tanh(mean + log_std.exp() * eps)
        logp = (torch.distributions.Normal(0.0, 1.0).log_prob(eps) - log_std
                - torch.log(1 - a * a + 1e-6)).sum(1, keepdim=True)  # fmt: skip
        return a, logp

    s, a, r, s2, done = batch
    alpha = log_alpha.exp().detach()
    with torch.no_grad():
        if nets.sac:
            a2, logp2 = sample(s2, noise[0])
            next_q = q(critic_t, s2, a2).amin(0) - alpha * logp2
        else:
            smooth = (noise[0] * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            a2 = (torch.tanh(mlp(actor_t, s2)) + smooth).clamp(-1, 1)
            next_q = q(critic_t, s2, a2).amin(0)
        y = r + cfg.gamma * (1 - done) * next_q
    critic_loss = ((q(critic, s, a) - y) ** 2).mean(dim=(1, 2)).sum()
    frozen = [w.detach() for w in critic]
    if nets.sac:
        pi, logp = sample(s, noise[1])
        actor_loss = (alpha * logp - q(frozen, s, pi).amin(0)).mean()
        alpha_loss = -(log_alpha * (logp.detach() + target_entropy)).mean()
    else:
        actor_loss = -q(frozen, s, torch.tanh(mlp(actor, s)))[0].mean()
        alpha_loss = 0 * log_alpha
    return critic_loss, actor_loss, alpha_loss


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_gradients_match_torch_autograd(algo: str, activation: str) -> None:
    """Every weight's gradient (critics, actor, log α) equals autograd's on the losses
    written out in torch, to float32 precision: 2 action dims, targets apart from the nets."""
    torch = pytest.importorskip("torch")
    from rlbudget.agents.offpolicy import gradients

    cfg = OffPolicyConfig(algorithm=algo, net_arch=[16, 8], activation_fn=activation,
                          ent_coef="auto_0.3", gamma=0.9)  # fmt: skip
    nets = Nets(cfg, 3, 2)
    rng = np.random.default_rng(7)
    nets.critic_target_flat += rng.normal(0, 0.1, nets.critic_target_flat.shape).astype(np.float32)
    nets.actor_target_flat += rng.normal(0, 0.1, nets.actor_target_flat.shape).astype(np.float32)
    n = 64
    batch = [rng.normal(0, 1, (n, 3)), rng.uniform(-1, 1, (n, 2)), rng.normal(0, 1, (n, 1)),
             rng.normal(0, 1, (n, 3)), (rng.random((n, 1)) < 0.2)]  # fmt: skip
    batch = [np.asarray(b, np.float32) for b in batch]
    noise = [rng.standard_normal((n, 2), np.float32) for _ in range(2)]
    loss = gradients(nets, batch, cfg, noise, True, target_entropy=-2.0)

    theta = torch.tensor(nets.theta, dtype=torch.float64, requires_grad=True)
    as64 = [torch.tensor(b, dtype=torch.float64) for b in batch]
    noise64 = [torch.tensor(e, dtype=torch.float64) for e in noise]
    critic_loss, actor_loss, alpha_loss = _torch_losses(torch, nets, theta, as64, noise64, cfg,
                                                        -2.0)  # fmt: skip
    (critic_loss + actor_loss + alpha_loss).backward()
    expected = theta.grad.numpy()
    assert loss == pytest.approx(float(critic_loss.detach()), rel=1e-5)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(nets.grad, expected, rtol=1e-4, atol=1e-5 * scale)
    # the actor's and critics' gradients are not zero (the test would pass on nothing)
    assert np.abs(nets.grad[: nets.n_critic]).max() > 1e-3
    assert np.abs(nets.grad[nets.n_critic : -1]).max() > 1e-3
    if algo == "lean-sac":
        assert abs(nets.grad[-1]) > 1e-3  # α's gradient is there too


def test_adam_matches_torch() -> None:
    """The Adam step on the flat vector follows torch.optim.Adam (two learning rates, the
    critics' and the actor's parts stepped a different number of times)."""
    torch = pytest.importorskip("torch")
    cfg = OffPolicyConfig(algorithm="lean-td3", net_arch=[8], learning_rate=1e-2,
                          policy_learning_rate=3e-3)  # fmt: skip
    nets = Nets(cfg, 3, 1)
    n_c = nets.n_critic
    critic = torch.tensor(nets.theta[:n_c], requires_grad=True)
    actor = torch.tensor(nets.theta[n_c:-1], requires_grad=True)
    log_alpha = torch.tensor(nets.theta[-1:], requires_grad=True)  # the critics' rate
    opt_c = torch.optim.Adam([critic], lr=1e-2)
    opt_a = torch.optim.Adam([{"params": [actor]}, {"params": [log_alpha], "lr": 1e-2}], lr=3e-3)
    rng = np.random.default_rng(3)
    for step in range(1, 7):
        g = rng.normal(0, 1, nets.theta.shape).astype(np.float32)
        nets.grad[:] = g
        critic.grad = torch.tensor(g[:n_c])
        nets.adam(slice(0, n_c), step)
        opt_c.step()
        if step % 2 == 0:
            actor.grad, log_alpha.grad = torch.tensor(g[n_c:-1]), torch.tensor(g[-1:])
            nets.adam(slice(n_c, None), step // 2)
            opt_a.step()
    np.testing.assert_allclose(nets.theta[:n_c], critic.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(nets.theta[n_c:-1], actor.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(nets.theta[-1:], log_alpha.detach().numpy(), rtol=0, atol=1e-6)
    assert not np.allclose(nets.theta[n_c:], Nets(cfg, 3, 1).theta[n_c:])  # it moved


@pytest.mark.parametrize(("noise", "ratio"), [("ornstein-uhlenbeck", 0.2), ("pink", 0.75)])
def test_correlated_noise_moves_actions_less_per_step_than_white(noise: str, ratio: float) -> None:
    """TD3's correlated noise (σ 0.5) changes the action from one step to the next less than
    white noise of the same σ: the mean |a(t+1) − a(t)| over the 100 noisy steps after a
    100-step random phase, against white noise's. OU's increments are σ√dt ε (0.05 against
    white's ≈ 0.56 before clipping); pink noise's successive values are correlated (lag-1
    correlation ≈ 0.5–0.7 over a 200-step episode, so differences ≈ 0.6–0.7× white's)."""

    def jitter(kind: str) -> float:
        tiny = {**TINY, "learning_starts": 100}
        cfg = OffPolicyConfig(algorithm="lean-td3", n_timesteps=200, noise_type=kind,
                              exploration_noise=0.5, **tiny)  # fmt: skip
        result = train_offpolicy("Pendulum-v1", cfg)
        assert result.checkpoint is not None
        a = result.checkpoint.arrays["buffer"][100:200, 3]  # actions (in [-1, 1]) after it
        return float(np.abs(np.diff(a)).mean())

    assert jitter(noise) < ratio * jitter("normal")


def test_a_checkpoint_of_the_torch_version_is_refused_in_one_line() -> None:
    from rlbudget.agents.common import Checkpoint

    cfg = OffPolicyConfig(n_timesteps=60, **TINY)
    first = train_offpolicy("Pendulum-v1", cfg)
    assert first.checkpoint is not None
    # the torch version's keys: actor.0, critic.0, …, adam0_m; no flat "theta"
    arrays = {k: v for k, v in first.checkpoint.arrays.items() if k != "theta"}
    with pytest.raises(TrainingError) as err:
        train_offpolicy("Pendulum-v1", cfg, resume=Checkpoint(first.checkpoint.state, arrays))
    assert str(err.value) == (
        "the checkpoint's 'theta' is missing or has another shape: it was written by another "
        "version of lean-sac/lean-td3 or another network; train afresh without --resume"
    )
