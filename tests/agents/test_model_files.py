"""Model loading runs no code from the model's folder unless trusted (agents.policies.model_files).

A tiny stand-alone env keeps these tests independent of the twin: what is tested is the
files, not the policy's quality.
"""

from __future__ import annotations

import base64
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import gymnasium as gym  # noqa: E402
from gymnasium import spaces  # noqa: E402

from agents.policies import make_policy  # noqa: E402
from agents.policies.model_files import (  # noqa: E402
    NORM_STATS,
    VECNORMALIZE_PKL,
    load_ppo,
    load_stats,
    save_stats,
    stats_beside,
)
from kisim.core.errors import KisimError  # noqa: E402


class _Env(gym.Env):  # type: ignore[misc]
    observation_space = spaces.Box(-np.inf, np.inf, (10,), np.float32)
    action_space = spaces.MultiDiscrete([5, 5, 3])

    def reset(self, seed=None, options=None):  # type: ignore[no-untyped-def]
        super().reset(seed=seed)
        return self.np_random.normal(size=10).astype(np.float32), {}

    def step(self, a):  # type: ignore[no-untyped-def]
        return self.np_random.normal(size=10).astype(np.float32) * 3, 1.0, False, False, {}


class _Payload:
    """Unpickling this writes a marker file: proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "pwned"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    d = tmp_path_factory.mktemp("model")
    venv = VecNormalize(DummyVecEnv([_Env]))
    m = PPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, device="cpu", seed=0,
            policy_kwargs={"net_arch": [16]})  # fmt: skip
    m.learn(32)
    m.save(d / "model.zip")
    venv.save(str(d / VECNORMALIZE_PKL))
    save_stats(venv, d / NORM_STATS)
    return d


def _copy(src: Path, dst: Path, *names: str) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        (dst / n).write_bytes((src / n).read_bytes())
    return dst


def test_safe_load_acts_like_plain_load_and_unpickles_nothing(model_dir, monkeypatch) -> None:
    from stable_baselines3 import PPO

    ref = PPO.load(str(model_dir / "model.zip"), device="cpu")
    import cloudpickle

    def refuse(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(cloudpickle, "loads", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    m = load_ppo(model_dir / "model.zip", trust=False)
    stats = stats_beside(model_dir / "model.zip", trust=False)
    assert m.observation_space == ref.observation_space and m.action_space == ref.action_space
    obs = np.random.default_rng(0).normal(size=(50, 10)).astype(np.float32) * 3
    for o in obs:
        a_ref, _ = ref.predict(o, deterministic=True)
        a, _ = m.predict(o, deterministic=True)
        assert np.array_equal(a, a_ref)
    assert stats.obs_mean.shape == (10,)


def test_npz_statistics_normalise_exactly_as_vecnormalize(model_dir) -> None:
    with (model_dir / VECNORMALIZE_PKL).open("rb") as f:
        vn = pickle.load(f)  # the test's own file
    stats = load_stats(model_dir / NORM_STATS)
    o = np.random.default_rng(1).normal(size=10).astype(np.float32) * 5
    assert np.allclose(stats.normalize_obs(o), vn.normalize_obs(o), rtol=0, atol=1e-6)
    with np.load(model_dir / NORM_STATS, allow_pickle=False) as z:  # plain arrays only
        assert {"obs_mean", "obs_var", "clip_obs"} <= set(z.files)


def test_pickled_statistics_alone_are_refused_unless_trusted(model_dir, tmp_path) -> None:
    d = _copy(model_dir, tmp_path / "old", "model.zip", VECNORMALIZE_PKL)
    with pytest.raises(KisimError, match=r"vecnormalize.pkl: .*pickle.*--trust-model"):
        stats_beside(d / "model.zip", trust=False)
    pol = make_policy(f"ppo:{d / 'model.zip'}")
    with pytest.raises(KisimError, match="--trust-model"):
        pol._load()
    trusted = make_policy(f"ppo:{d / 'model.zip'}", trust_model=True)
    trusted._load()
    assert trusted.vecnorm is not None and trusted.model is not None


def test_a_crafted_vecnormalize_pickle_does_not_run(model_dir, tmp_path) -> None:
    d = _copy(model_dir, tmp_path / "evil", "model.zip")
    marker = tmp_path / "marker"
    (d / VECNORMALIZE_PKL).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(KisimError, match="--trust-model"):
        make_policy(f"ppo:{d / 'model.zip'}")._load()
    assert not marker.exists()


def _with_data(src: Path, dst: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the model zip with its `data` JSON changed by `edit(dict)`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            blob = zin.read(item.filename)
            if item.filename == "data":
                d = json.loads(blob)
                edit(d)
                blob = json.dumps(d).encode()
            zout.writestr(item, blob)
    return dst


@pytest.mark.parametrize("key", ["policy_class", "lr_schedule", "smuggled"])
def test_a_crafted_zip_entry_does_not_run(model_dir, tmp_path, key: str) -> None:
    import cloudpickle

    marker = tmp_path / "marker"
    evil = base64.b64encode(cloudpickle.dumps(_Payload(marker))).decode()

    def edit(d: dict) -> None:  # type: ignore[type-arg]
        d.setdefault(key, {":type:": "<class 'object'>"})[":serialized:"] = evil

    d = _copy(model_dir, tmp_path / "m", NORM_STATS)
    path = _with_data(model_dir / "model.zip", d / "model.zip", edit)
    if key == "smuggled":  # an entry kisim cannot rebuild: refused, not unpickled
        with pytest.raises(KisimError, match=r"pickled smuggled .*--trust-model"):
            load_ppo(path, trust=False)
    else:  # a known entry: replaced, so its pickle is never read
        load_ppo(path, trust=False)
    assert not marker.exists()


def test_not_a_model_is_one_clear_error(tmp_path) -> None:
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(KisimError, match="not a stable-baselines3 model"):
        load_ppo(bad, trust=False)
    (tmp_path / NORM_STATS).write_bytes(b"junk")
    with pytest.raises(KisimError, match="not normalisation statistics"):
        stats_beside(bad, trust=False)
