"""`kisim train --real` from its flags: check the target, build the backend, fine-tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kisim.core.errors import KisimError


def run_finetune(scenario: Path | None, source: Path, target: Any, out: Path, resume: bool,
                 episodes: int, lr: float, bounds: tuple[tuple[str, int], ...],
                 patterns: list[str], seed: int, trust_model: bool = False) -> Any:  # fmt: skip
    """`kisim train --real`: agents.training.finetune on the backend the flags name."""
    from agents.evaluation.real_episode import check_real
    from agents.evaluation.run import RealTarget, on_sigterm
    from agents.training.finetune import FinetuneSettings, discard_unstarted, finetune
    from bridge.factory import make_backend
    from bridge.kube_settings import KubeSettings
    from kisim.core.config import load_scenario
    from kisim.core.paths import default_scenario
    from kisim.core.patterns import PATTERNS

    assert isinstance(target, RealTarget)
    if not source.is_file():
        raise KisimError(f"--from {source}: no such model file")
    sc = load_scenario(scenario or default_scenario())
    for p in patterns:
        if p not in PATTERNS:
            raise KisimError(f"unknown pattern '{p}' (known: {', '.join(PATTERNS)})")
    kube = target.kube()
    check_real(sc, [], target.backend, kube, target.prometheus_url)
    settings = FinetuneSettings(source=str(source.resolve()), backend=target.backend,
                                episodes=episodes, learning_rate=lr, patterns=tuple(patterns),
                                max_replicas=bounds, seed=seed)  # fmt: skip
    ks = KubeSettings.model_validate(kube) if kube is not None else None

    def backend(work: Path):  # type: ignore[no-untyped-def]
        return make_backend(target.backend, work, ks, target.prometheus_url)

    existed, fresh = out.exists(), not (out / "config.json").exists() and not resume
    try:
        return on_sigterm(finetune, sc, settings, out, backend, resume, print, trust_model)
    except BaseException:
        if fresh:  # this call began the run: leave no half-started folder
            discard_unstarted(out, existed)
        raise
