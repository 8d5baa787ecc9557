"""A training run's folder (OUT) as a record of what ran: ``config.json`` (resolved
scenario, training config, scenario fingerprint, versions), the checks that keep a
fresh run out of a used folder, and what ``--resume`` continues (the stored run, only
its step budget may change)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from agents.training.train_config import TrainConfig
from kisim.core.config import Scenario, scenario_data, scenario_fingerprint
from kisim.core.errors import ConfigError, KisimError
from kisim.core.rundir import read_json, write_json

FORMAT = "kisim-train/1"
MARKERS = ("model.zip", "best_model.zip", "checkpoints", "config.json")


def _versions() -> dict[str, str]:
    import gymnasium
    import stable_baselines3
    import torch

    import kisim

    return {"kisim": getattr(kisim, "__version__", "?"),
            "stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
            "gymnasium": gymnasium.__version__, "python": sys.version.split()[0]}  # fmt: skip


def write_config(out: Path, sc: Scenario, cfg: TrainConfig, scenario_file: str | None) -> None:
    write_json(out / "config.json", {
        "format": FORMAT, "scenario_file": scenario_file, "fingerprint": scenario_fingerprint(sc),
        "train": cfg.model_dump(mode="json"), "scenario": scenario_data(sc),
        "versions": _versions(),
    })  # fmt: skip


def read_run_config(out: Path) -> tuple[Scenario, TrainConfig, dict[str, Any]]:
    """The scenario and training config a run in OUT was started with."""
    p = out / "config.json"
    if not p.is_file():
        raise KisimError(f"{out}: no config.json (not a kisim train output)")
    d = read_json(p)
    if d.get("format") != FORMAT:
        raise KisimError(f"{p}: format {d.get('format')!r}, expected {FORMAT!r}")
    return Scenario.model_validate(d["scenario"]), TrainConfig.model_validate(d["train"]), d


def check_fresh_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise KisimError(f"{out}: exists and is not a directory")
    found = [m for m in MARKERS if (out / m).exists()]
    if found:
        raise KisimError(f"{out}: already holds a training run ({', '.join(found)}); "
                         "use --resume to continue it or another --out")  # fmt: skip


def resolve_run(out: Path, resume: bool, scenario: Path | None, config: Path | None,
                patterns: list[str] | None, timesteps: int | None,
                seed: int | None) -> tuple[Scenario, TrainConfig, str | None]:  # fmt: skip
    """What to train: the files and flags of a new run, or the stored run with its budget
    raised for ``--resume`` (other flags must agree with the stored run)."""
    from agents.training.train_config import load_train_config
    from kisim.core.config import load_scenario
    from kisim.core.patterns import PATTERNS
    from kisim.env.environment import DEFAULT_SCENARIO
    from kisim.env.presets import check_presets

    for p in patterns or []:  # the flag's fault, not the config file's it would land in
        if p not in PATTERNS:
            raise ConfigError(f"--patterns: unknown pattern '{p}' (known: {', '.join(PATTERNS)})")
    if resume:
        sc, cfg, d = read_run_config(out)
        flags = (("--patterns", patterns, cfg.envs.patterns), ("--seed", seed, cfg.seed))
        for flag, given, stored in flags:
            if given is not None and given != stored:
                raise ConfigError(f"{flag} {given} differs from the run's {stored} "
                                  f"({out}/config.json); a resumed run keeps its "
                                  "settings")  # fmt: skip
        skip: Any = {"budget": True, "seed": True, "envs": {"patterns"}}  # flags, checked above
        if config is not None and load_train_config(config).model_dump(exclude=skip) != \
                cfg.model_dump(exclude=skip):  # fmt: skip
            raise ConfigError(f"--config {config} differs from the run's ({out}/config.json)")
        fp = d.get("fingerprint")
        if scenario is not None and scenario_fingerprint(load_scenario(scenario)) != fp:
            raise ConfigError(f"--scenario {scenario} differs from the run's ({out}/config.json)")
        if timesteps is not None:
            budget = cfg.budget.model_copy(update={"timesteps": timesteps})
            cfg = cfg.model_copy(update={"budget": budget})
        return sc, cfg, d.get("scenario_file")
    path = scenario if scenario is not None else DEFAULT_SCENARIO
    sc = load_scenario(path)
    check_presets(sc)
    over: dict[str, Any] = {}
    if patterns is not None:
        over["envs.patterns"] = patterns
    if timesteps is not None:
        over["budget.timesteps"] = timesteps
    if seed is not None:
        over["seed"] = seed
    return sc, load_train_config(config, **over), str(path)
