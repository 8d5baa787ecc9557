"""How far two PPO policies are apart *in what they do*: the KL and action drift that the
stopping rule's stability test reads (`agents.training.convergence`, docs/training.md).

Compared behaviourally: each state's action distribution is pushed through the env's
own action decoding (on a copy of the agent-side state, clamping included) and joint
actions that leave the same targets are merged, so a policy that only reshuffles
equivalent actions - +1 or +2 replicas when both hit max_replicas - does not count as
moving.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_JOINT_ACTIONS = 512  # larger action spaces compare raw distributions (no effect grouping)


def _joint_probs(dist: Any) -> np.ndarray:
    """(N, prod(nvec)) joint action probabilities, first component slowest (itertools.product)."""
    d = dist.distribution
    comps = [c.probs.double().numpy() for c in (d if isinstance(d, list) else [d])]
    p = comps[0]
    for c in comps[1:]:
        p = (p[:, :, None] * c[:, None, :]).reshape(len(p), -1)
    return p


def _state_key(st: Any) -> tuple[Any, ...]:
    t = tuple(sorted((k, v.cpu, v.memory_gib, v.max_batch_size, v.instances)
                     for k, v in st.templates.items()))  # fmt: skip
    return (tuple(sorted(st.desired.items())), st.placement, st.hpa_target, t)


def _effect_key(st: Any) -> tuple[Any, ...]:
    """The targets a state asks of the cluster. Placement only counts while every pool has
    replicas: with one pool at zero the Service routes everything to the other whatever
    the placement (`twin.kernel`'s routing rule, kube-proxy's too)."""
    k = _state_key(st)
    both = len(st.desired) > 1 and all(n > 0 for n in st.desired.values())
    return (k[0], k[1] if both else "-", k[2], k[3])


class EffectGroups:
    """Which joint actions have the same effect in a state: the env's action preset decodes
    each one (clamping included) on a copy of the state, and actions that leave the same
    targets (`_effect_key`) share a group."""

    def __init__(self, preset: Any, nvec: Sequence[int]) -> None:
        self.preset = preset
        ranges = (range(n) for n in nvec)
        self.joint = [np.array(a, dtype=np.int64) for a in itertools.product(*ranges)]
        self._cache: dict[tuple[Any, ...], np.ndarray] = {}

    def __call__(self, st: Any) -> np.ndarray:
        key = _state_key(st)
        g = self._cache.get(key)
        if g is None:
            ids: dict[tuple[Any, ...], int] = {}
            g = np.empty(len(self.joint), dtype=np.int64)
            for i, a in enumerate(self.joint):
                after = copy.deepcopy(st)
                self.preset.decode(a if len(a) > 1 else int(a[0]), after)
                g[i] = ids.setdefault(_effect_key(after), len(ids))
            self._cache[key] = g
        return g


def effect_groups(env: Any) -> EffectGroups | None:
    """The env's `EffectGroups`, or None when its action space is too large to enumerate."""
    from kisim.env.actions import ACTIONS

    space = env.action_space
    nvec, n = getattr(space, "nvec", None), getattr(space, "n", None)
    size = int(np.prod(nvec)) if nvec is not None else int(n or 0)
    if not 0 < size <= MAX_JOINT_ACTIONS:
        return None
    dims = [int(v) for v in nvec] if nvec is not None else [int(n)]
    return EffectGroups(ACTIONS[env.scenario.env.action](env.ctx), dims)


def policy_divergence(old: Any, new: Any, obs: np.ndarray, states: Sequence[Any] | None = None,
                      groups: EffectGroups | None = None,
                      ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per observation: KL(old || new) and whether the deterministic action changed (0/1).

    With `states` and `groups` both are *behavioural* (module doc). Without them, the raw
    distributions and actions are compared (KL summed over MultiDiscrete components).
    """
    import torch

    if len(obs) == 0:
        return np.zeros(0), np.zeros(0)
    with torch.no_grad():
        x = torch.as_tensor(obs, dtype=torch.float32)
        d_old, d_new = old.get_distribution(x), new.get_distribution(x)
        if states is not None and groups is not None:
            return _behavioural(_joint_probs(d_old), _joint_probs(d_new), states, groups)
        return _raw(d_old, d_new, len(obs))


def _behavioural(po: np.ndarray, pn: np.ndarray, states: Sequence[Any],
                 groups: EffectGroups) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    kls, changed = [], []
    for i, st in enumerate(states):
        g = groups(st)
        a = np.bincount(g, weights=po[i])
        b = np.bincount(g, weights=pn[i])
        m = a > 0
        kls.append(float(np.sum(a[m] * (np.log(a[m]) - np.log(np.maximum(b[m], 1e-300))))))
        changed.append(g[int(po[i].argmax())] != g[int(pn[i].argmax())])
    return np.asarray(kls), np.asarray(changed, dtype=float)


def _raw(d_old: Any, d_new: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    from torch.distributions import kl_divergence

    po_, pn_ = d_old.distribution, d_new.distribution
    if isinstance(po_, list):
        kl = sum(kl_divergence(a, b) for a, b in zip(po_, pn_, strict=True))
    else:
        kl = kl_divergence(po_, pn_)
        if kl.dim() > 1:
            kl = kl.sum(-1)
    mo, mn = d_old.mode(), d_new.mode()
    ch = (mo != mn).reshape(n, -1).any(dim=1).float()
    return kl.double().numpy(), ch.double().numpy()
