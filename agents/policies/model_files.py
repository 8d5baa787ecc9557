"""Loading a trained PPO model without running code from its folder (docs/evaluation.md).

A pickle can execute anything when it is loaded, and a model folder is input like any
other: someone else's results, a download. Two parts of a stable-baselines3 model are
pickles: ``vecnormalize.pkl`` (VecNormalize, whole) and, inside the ``.zip``, the
cloudpickled entries of its ``data`` JSON (policy class, spaces, schedules, buffer
class). So by default:

* normalisation statistics come from ``vecnormalize.npz``, plain arrays that `kisim
  train` writes beside every model (`save_stats`; ``np.load(allow_pickle=False)``);
* `load_ppo` reads the zip's ``data`` as JSON and hands `PPO.load` a replacement for
  every pickled entry (``custom_objects``, which stable-baselines3 uses *instead of*
  unpickling): spaces rebuilt from their readable fields, the MLP actor-critic kisim
  trains, constant schedules. The weights are read with ``torch.load(weights_only=True)``.
* a folder with only ``vecnormalize.pkl``, or a zip with a pickled entry this cannot
  rebuild, is refused unless the caller trusts it (``--trust-model``).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kisim.core.errors import KisimError

VECNORMALIZE_PKL = "vecnormalize.pkl"
NORM_STATS = "vecnormalize.npz"
TRUST_HINT = "a pickle can run code; pass --trust-model if you trust this model's source"


@dataclass(frozen=True)
class NormStats:
    """VecNormalize's state as plain numbers: what normalising observations needs."""

    obs_mean: np.ndarray
    obs_var: np.ndarray
    obs_count: float
    ret_mean: np.ndarray
    ret_var: np.ndarray
    ret_count: float
    clip_obs: float
    clip_reward: float
    epsilon: float
    gamma: float
    norm_obs: bool
    norm_reward: bool

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """`VecNormalize.normalize_obs`, frozen: the same arithmetic on the same numbers."""
        if not self.norm_obs:
            return obs
        z = (obs - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon)
        return np.clip(z, -self.clip_obs, self.clip_obs).astype(obs.dtype, copy=False)

    @classmethod
    def of(cls, vn: Any) -> NormStats:
        """From a VecNormalize (which has no `obs_rms` when it normalises no observations)."""
        o, r = _rms(vn, "obs_rms"), _rms(vn, "ret_rms")
        return cls(o[0], o[1], o[2], r[0], r[1], r[2],
                   float(vn.clip_obs), float(vn.clip_reward), float(vn.epsilon), float(vn.gamma),
                   bool(vn.norm_obs), bool(vn.norm_reward))  # fmt: skip

    def into(self, vn: Any) -> Any:
        """Set a fresh VecNormalize's statistics to these (fine-tuning continues from them)."""
        parts = {"obs_rms": (self.obs_mean, self.obs_var, self.obs_count),
                 "ret_rms": (self.ret_mean, self.ret_var, self.ret_count)}
        for name, (mean, var, count) in parts.items():
            rms = getattr(vn, name, None)
            if rms is not None and mean.size:
                rms.mean, rms.var, rms.count = mean.copy(), var.copy(), count  # fmt: skip
        vn.clip_obs, vn.clip_reward, vn.epsilon, vn.gamma = \
            self.clip_obs, self.clip_reward, self.epsilon, self.gamma  # fmt: skip
        vn.norm_obs, vn.norm_reward = self.norm_obs, self.norm_reward
        return vn


def _rms(vn: Any, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    rms = getattr(vn, name, None)
    if rms is None:
        return np.zeros(0), np.zeros(0), 0.0
    return np.asarray(rms.mean, np.float64), np.asarray(rms.var, np.float64), float(rms.count)


def save_stats(vn: Any, path: Path) -> None:
    """``vecnormalize.npz`` beside a model: written to a temporary name, then renamed."""
    s = NormStats.of(vn)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in s.__dict__.items()})
    os.replace(tmp, path)


def load_stats(path: Path) -> NormStats:
    """Statistics from a ``.npz`` of plain arrays (no pickle allowed); errors name the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        return NormStats(
            d["obs_mean"], d["obs_var"], float(d["obs_count"]), d["ret_mean"], d["ret_var"],
            float(d["ret_count"]), float(d["clip_obs"]), float(d["clip_reward"]),
            float(d["epsilon"]), float(d["gamma"]), bool(d["norm_obs"]), bool(d["norm_reward"]),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        why = f"{type(e).__name__}: {e}"
        raise KisimError(f"{path}: not normalisation statistics ({why})") from None


def stats_beside(model: Path, trust: bool) -> Any:
    """The normalisation next to `model`: NormStats, a trusted VecNormalize, or None."""
    npz, pkl = model.parent / NORM_STATS, model.parent / VECNORMALIZE_PKL
    if npz.is_file():
        return load_stats(npz)
    if not pkl.is_file():
        return None
    if not trust:
        raise KisimError(f"{pkl}: normalisation stored only as a pickle ({TRUST_HINT}, or "
                         f"retrain: kisim train writes {NORM_STATS})")  # fmt: skip
    import pickle

    with pkl.open("rb") as f:
        vn = pickle.load(f)  # noqa: S301 - the user vouched for it (--trust-model)
    vn.training = False
    return vn


# --------------------------------------------------------------------------- the zip


def _data(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as z:
            return dict(json.loads(z.read("data")))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        why = f"{type(e).__name__}: {e}"
        raise KisimError(f"{path}: not a stable-baselines3 model ({why})") from None


def _array(text: Any, dtype: str) -> np.ndarray:
    if not isinstance(text, str) or "..." in text:
        raise ValueError(f"unreadable array {text!r}")
    return np.array(text.replace("[", " ").replace("]", " ").split(), dtype=dtype)


def _space(d: dict[str, Any]) -> Any:
    """A gymnasium space from the readable fields stable-baselines3 stores beside its pickle."""
    from gymnasium import spaces

    kind = str(d.get(":type:", ""))
    if kind.endswith(".Box'>"):
        dt = str(d["dtype"])
        low, high = _array(d["low"], dt), _array(d["high"], dt)
        shape = tuple(int(x) for x in d["_shape"])
        return spaces.Box(low.reshape(shape), high.reshape(shape), shape, dtype=dt)
    if kind.endswith(".MultiDiscrete'>"):
        return spaces.MultiDiscrete(_array(d["nvec"], "int64"), start=_array(d["start"], "int64"))
    if kind.endswith(".Discrete'>"):
        return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    raise ValueError(f"space {kind}")


_TRANSIENT = {"_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer",
              "ep_success_buffer"}  # fmt: skip
_ACTIVATIONS = {"Tanh", "ReLU", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid"}
_CONST = re.compile(r"ConstantSchedule\(val=([-+0-9.eE]+)\)")


def _policy_kwargs(d: dict[str, Any]) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in (":type:", ":serialized:"):
            continue
        if k == "activation_fn":
            m = re.fullmatch(r"<class 'torch\.nn\.modules\.activation\.(\w+)'>", str(v))
            if m is None or m.group(1) not in _ACTIVATIONS:
                raise ValueError(f"activation {v}")
            out[k] = getattr(torch.nn, m.group(1))
        elif isinstance(v, str) and v.startswith("<"):
            raise ValueError(f"policy_kwargs.{k} = {v}")
        else:
            out[k] = v
    return out


def _schedule(d: Any, default: float) -> Any:
    m = _CONST.search(str(d.get("value_schedule", ""))) if isinstance(d, dict) else None
    val = float(m.group(1)) if m else default
    return lambda _: val


def safe_objects(path: Path) -> dict[str, Any]:
    """A replacement for every pickled entry of the model's ``data``, or a KisimError."""
    from stable_baselines3.common.buffers import RolloutBuffer
    from stable_baselines3.common.policies import ActorCriticPolicy

    objs: dict[str, Any] = {}
    for k, v in _data(path).items():
        if not (isinstance(v, dict) and ":serialized:" in v):
            continue
        try:
            if k == "policy_class":
                if "ActorCriticPolicy" not in str(v.get("__init__", "")):
                    raise ValueError("a policy class other than the MLP actor-critic")
                objs[k] = ActorCriticPolicy
            elif k in ("observation_space", "action_space"):
                objs[k] = _space(v)
            elif k == "policy_kwargs":
                objs[k] = _policy_kwargs(v)
            elif k in _TRANSIENT:
                objs[k] = None  # rebuilt by the next learn() (`_setup_learn`), unused to act
            elif k == "rollout_buffer_class":
                objs[k] = RolloutBuffer
            elif k in ("clip_range", "clip_range_vf"):
                objs[k] = _schedule(v, 0.2)
            elif k in ("lr_schedule", "learning_rate"):
                objs[k] = _schedule(v, 0.0)
            else:
                raise ValueError("an entry kisim does not know")
        except (ValueError, KeyError, TypeError) as e:
            raise KisimError(f"{path}: pickled {k} cannot be read safely ({e}); "
                             f"{TRUST_HINT}") from None  # fmt: skip
    return objs


def load_ppo(path: Path, trust: bool, env: Any = None,
             custom_objects: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """`PPO.load` on the CPU that unpickles nothing unless `trust` (see the module doc)."""
    from stable_baselines3 import PPO

    objs = {} if trust else safe_objects(path)
    objs.update(custom_objects or {})
    return PPO.load(str(path), env=env, device="cpu", custom_objects=objs)
