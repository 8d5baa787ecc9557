"""What a `TrainConfig` builds besides the envs: the stable-baselines3 PPO model, the
domain-randomisation ranges and the stopping rule (shared by `kisim train` and
`kisim bench train`, so the benchmark times the model that training uses)."""

from __future__ import annotations

from typing import Any

from agents.training.convergence import ConvergenceRule
from agents.training.train_config import TrainConfig
from agents.training.training_env import Ranges


def torch_for_training(threads: int) -> None:
    """The learner's torch settings: `threads` intra-op threads (more only contend on 2 cores),
    and no argument validation in `torch.distributions`. SB3 builds one Categorical per
    action dimension at every forward pass; validating their logits and the sampled values
    took ~25 % of a 4-env forward pass (573 vs 441 us, docs/training.md, "Where a step's
    time goes"). Validation only raises on NaN logits or out-of-range actions; it changes no
    number, and a NaN would still surface as NaN losses in progress.csv."""
    import torch

    torch.set_num_threads(threads)
    torch.distributions.Distribution.set_default_validate_args(False)


def new_model(cfg: TrainConfig, venv: Any) -> Any:
    """A fresh PPO with the config's hyper-parameters, MLP and seed, on the CPU."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import LinearSchedule

    p = cfg.ppo
    lr: Any = p.learning_rate
    if p.lr_schedule == "linear":
        lr = LinearSchedule(p.learning_rate, 0.0, 1.0)
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[p.activation]
    return PPO(
        "MlpPolicy", venv, learning_rate=lr, n_steps=p.n_steps, batch_size=p.batch_size,
        n_epochs=p.n_epochs, gamma=p.gamma, gae_lambda=p.gae_lambda, clip_range=p.clip_range,
        ent_coef=p.ent_coef, vf_coef=p.vf_coef, max_grad_norm=p.max_grad_norm,
        target_kl=p.target_kl,
        policy_kwargs={"net_arch": {"pi": list(p.net_arch), "vf": list(p.net_arch)},
                       "activation_fn": act},
        seed=cfg.seed, device="cpu", verbose=0,
    )  # fmt: skip


def ranges(cfg: TrainConfig) -> Ranges:
    """Domain-randomisation ranges (all 1.0 when it is off)."""
    dr = cfg.domain_randomization
    if not dr.enabled:
        return Ranges()
    return Ranges(dr.service_time, dr.startup, dr.scrape_interval, dr.faults_per_hour)


def stopping_rule(cfg: TrainConfig) -> ConvergenceRule | None:
    """The configured stopping rule, or None when it is off."""
    c = cfg.convergence
    if not c.enabled:
        return None
    return ConvergenceRule(window=c.window, min_evaluations=c.min_evaluations,
                           min_timesteps=c.min_timesteps, level=c.level, min_delta=c.min_delta,
                           kl_max=c.kl_max, drift_max=c.drift_max)  # fmt: skip
