"""The training configuration (`configs/train/*.yaml`, ``kind: TrainConfig``): typed,
versioned, every field documented, validated on load with the file and field named.

Groups: `ppo` (stable-baselines3 hyper-parameters), `envs` (vectorisation and the
pattern schedule), `normalize` (VecNormalize), `domain_randomization`, `warm_start`
(imitation of a teacher before PPO), `budget`, `evaluation` (held-out evaluation against a
baseline), `convergence` (the stopping rule, `agents.training.convergence`), `checkpoints`,
`logging`. docs/training.md explains the
defaults and the measurements behind them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kisim.core.config import API_VERSION, _fmt_errors, read_extended, set_dotted
from kisim.core.errors import ConfigError, KisimError
from kisim.core.paths import config_path

DEFAULT_TRAIN_CONFIG = config_path("train", "default.yaml")

Pos = float
Range = tuple[float, float]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PPOConfig(_Model):
    """stable-baselines3 PPO hyper-parameters (names as in `stable_baselines3.PPO`)."""

    learning_rate: float = Field(3e-4, gt=0, description="Adam step size (seed plan: 3e-4).")
    lr_schedule: Literal["constant", "linear"] = Field(
        "constant", description="constant, or linear decay to 0 over `budget.timesteps`."
    )
    n_steps: int = Field(256, ge=2, description="Steps per env per rollout.")
    batch_size: int = Field(256, ge=2, description="Minibatch size of the updates.")
    n_epochs: int = Field(10, ge=1, description="Passes over each rollout.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor (seed plan: 0.99).")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda (seed plan: 0.95).")
    clip_range: float = Field(0.2, gt=0, description="PPO clip epsilon (seed plan: 0.2).")
    ent_coef: float = Field(0.0, ge=0, description="Entropy bonus coefficient.")
    vf_coef: float = Field(0.5, ge=0, description="Value-loss coefficient.")
    max_grad_norm: float = Field(0.5, gt=0, description="Gradient clipping norm.")
    target_kl: float | None = Field(None, gt=0, description="Early-stop an update past this KL.")
    net_arch: list[int] = Field(
        default_factory=lambda: [64, 64], min_length=1,
        description="Hidden layer sizes of the policy and value MLPs.",
    )  # fmt: skip
    activation: Literal["tanh", "relu"] = Field("tanh", description="Hidden activation.")


class EnvsConfig(_Model):
    """How many environments, how they are vectorised, which patterns they run."""

    n_envs: int = Field(4, ge=1, description="Parallel training episodes.")
    vec_env: Literal["dummy", "subproc"] = Field(
        "dummy", description="DummyVecEnv (one process) or SubprocVecEnv (one per env)."
    )
    torch_threads: int = Field(1, ge=1, description="torch.set_num_threads for the learner.")
    patterns: list[str] = Field(
        default_factory=lambda: ["ramp", "spike", "periodic", "random"], min_length=1,
        description="Load patterns of the training episodes (and of the evaluation).",
    )  # fmt: skip
    schedule: Literal["rotate", "sample"] = Field(
        "rotate", description="rotate: equal shares in every rollout; sample: uniform draws."
    )
    also_scenarios: list[str] = Field(
        default_factory=list,
        description="A generalist: more scenario files (paths relative to the working "
        "directory) whose episodes train the same policy; env i of n runs scenario i mod k "
        "(the run's own first) on that scenario's own load pattern. Their observation and "
        "action spaces must equal the run's scenario's. The held-out evaluation (best model, "
        "stopping rule) uses the run's own scenario only.",
    )  # fmt: skip


class NormalizeConfig(_Model):
    """VecNormalize: running normalisation of observations and/or rewards."""

    obs: bool = Field(False, description="Normalise observations (frozen after warm-up).")
    reward: bool = Field(True, description="Scale rewards by the running return std.")
    warmup_steps: int = Field(
        4096, ge=0, description="Steps over which the statistics are estimated, then frozen "
        "(so every saved model shares one normaliser and the reward scale stays put).",
    )  # fmt: skip
    clip_obs: float = Field(10.0, gt=0, description="Clip of normalised observations.")
    clip_reward: float = Field(10.0, gt=0, description="Clip of normalised rewards.")


class DomainRandomizationConfig(_Model):
    """Per-episode multiplicative factors on the calibration, drawn log-uniformly."""

    enabled: bool = Field(False, description="Randomise the twin's calibration per episode.")
    service_time: Range = Field((0.8, 1.25), description="Factor on every device's service time.")
    startup: Range = Field((0.5, 2.0), description="Factor on container start + model load.")
    scrape_interval: Range = Field((0.67, 2.0), description="Factor on the scrape interval.")
    faults_per_hour: float = Field(
        0.0, ge=0, allow_inf_nan=False,
        description="Random fault events per simulated hour in every training episode (kinds "
        "and durations from the scenario's faults.random; docs/twin-faults.md); 0 = the "
        "scenario's own.",
    )

    @model_validator(mode="after")
    def _ranges(self) -> DomainRandomizationConfig:
        for name in ("service_time", "startup", "scrape_interval"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name}: need 0 < low <= high, got [{lo}, {hi}]")
        return self


class BudgetConfig(_Model):
    timesteps: int = Field(200_000, ge=1, description="Most environment steps (all envs).")
    max_minutes: float | None = Field(None, gt=0, description="Most wall minutes (all sessions).")


class EvaluationConfig(_Model):
    """Periodic held-out evaluation: every pattern x `seeds_per_pattern` twin seeds."""

    every_steps: int = Field(4096, ge=1, description="Steps between evaluations.")
    seeds_per_pattern: int = Field(5, ge=2, description="Held-out twin seeds per pattern.")
    baseline: str = Field("hpa", description="Policy run once on the same episodes to compare.")

    @model_validator(mode="after")
    def _policy(self) -> EvaluationConfig:
        _known_policy(self.baseline)
        return self


class ConvergenceConfig(_Model):
    """The stopping rule (agents.training.convergence; docs/training.md)."""

    enabled: bool = Field(True, description="Stop early when the rule holds.")
    window: int = Field(4, ge=2, description="W: evaluations the rule looks back over.")
    min_evaluations: int = Field(6, ge=2, description="Never stop before this many.")
    min_timesteps: int = Field(0, ge=0, description="Never stop before this many steps.")
    level: float = Field(0.95, gt=0, lt=1, description="Confidence level of the interval.")
    min_delta: float = Field(0.02, ge=0, description="Improvement per episode that still counts "
                                                     "as none (reward units).")  # fmt: skip
    kl_max: float = Field(
        0.02, gt=0,
        description="Most behavioural KL between successive evaluated policies, nats/episode.",
    )  # fmt: skip
    drift_max: float = Field(0.02, ge=0, le=1, description="Most share of changed actions.")


class WarmStartConfig(_Model):
    """Imitation before PPO (agents/training/imitation.py): the policy network copies a
    teacher's actions on training seeds (then, with DAgger rounds, the teacher's choices in the
    states the clone reaches), the value network the returns; off without a teacher."""

    teacher: str | None = Field(
        None, description="Policy spec to imitate (e.g. oracle:3:plan); it must act in the "
        "scenario's action preset at env.step_s. None: no warm start.",
    )  # fmt: skip
    episodes: int = Field(32, ge=1, description="Teacher episodes (twin seeds 1000000 + k).")
    jobs: int = Field(1, ge=1, description="Teacher episodes run at a time (processes).")
    epochs: int = Field(
        300, ge=1, description="Passes of the supervised fit over the episodes (cpu-fleet: 50 "
        "left a clone that never moved; docs/benchmark.md, 'cpu-fleet').",
    )  # fmt: skip
    batch_size: int = Field(256, ge=1, description="Minibatch of the supervised fit.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam step size of the supervised fit.")
    value: bool = Field(True, description="Fit the value network to the episodes' returns too.")
    dagger_rounds: int = Field(
        0, ge=0, description="DAgger rounds after the first fit: the clone plays, the teacher "
        "labels its states, the fit reruns on all episodes so far.",
    )  # fmt: skip
    dagger_episodes: int = Field(16, ge=1, description="Episodes the clone plays per round.")
    demos: str | None = Field(
        None, description="An earlier training run's OUT (relative to the working directory) "
        "whose teacher episodes to reuse instead of playing them again: checked to be the same "
        "scenario, teacher, patterns and seeds. DAgger's rounds always play anew.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _policy(self) -> WarmStartConfig:
        if self.teacher is not None:
            _known_policy(self.teacher)
        return self


def _known_policy(spec: str) -> None:
    from agents.policies import make_policy

    try:
        make_policy(spec)  # unknown names and bad arguments fail here
    except KisimError as e:
        raise ValueError(str(e)) from None


class CheckpointConfig(_Model):
    every_steps: int = Field(8192, ge=1, description="Steps between checkpoints.")
    keep: int = Field(2, ge=1, description="Checkpoints kept on disk (newest).")


class LoggingConfig(_Model):
    tensorboard: bool = Field(True, description="TensorBoard event files (if installed).")
    figure: bool = Field(True, description="training_progress.png/.pdf at the end.")
    verbose: int = Field(0, ge=0, le=2, description="stable-baselines3 stdout table: 0 off.")


class TrainConfig(_Model):
    apiVersion: Literal["kisim/v1"] = API_VERSION
    kind: Literal["TrainConfig"] = "TrainConfig"
    name: str = "default"
    description: str = ""
    seed: int = Field(0, ge=0, description="Seeds the networks, the envs and their episodes.")
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    envs: EnvsConfig = Field(default_factory=EnvsConfig)
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    domain_randomization: DomainRandomizationConfig = Field(
        default_factory=DomainRandomizationConfig
    )
    warm_start: WarmStartConfig = Field(default_factory=WarmStartConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    convergence: ConvergenceConfig = Field(default_factory=ConvergenceConfig)
    checkpoints: CheckpointConfig = Field(default_factory=CheckpointConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        from kisim.core.patterns import PATTERNS

        for p in self.envs.patterns:
            if p not in PATTERNS:
                raise ValueError(f"envs.patterns: unknown pattern '{p}' "
                                 f"(known: {', '.join(PATTERNS)})")  # fmt: skip
        if len(set(self.envs.patterns)) != len(self.envs.patterns):
            raise ValueError("envs.patterns: a pattern repeats")
        if self.warm_start.teacher is not None and self.normalize.obs:
            raise ValueError("warm_start: the cloned policy sees raw observations; "
                             "set normalize.obs: false")  # fmt: skip
        if self.ppo.batch_size > self.ppo.n_steps * self.envs.n_envs:
            raise ValueError(f"ppo.batch_size {self.ppo.batch_size} > n_steps x n_envs "
                             f"({self.ppo.n_steps * self.envs.n_envs})")  # fmt: skip
        return self


def load_train_config(path: Path | str | None = None, **overrides: Any) -> TrainConfig:
    """Read a TrainConfig YAML (None = the default); `extends: other.yaml` deep-merges it over
    another config, as scenarios do; dotted `overrides` are validated alike."""
    p = Path(path) if path is not None else DEFAULT_TRAIN_CONFIG
    data = read_extended(p)
    for dotted, value in overrides.items():
        set_dotted(data, dotted, value)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(p, e)) from None
