"""Fair share across tenant queues: guaranteed quota, over-quota weight, reclaim.

Semantics of Kueue (ClusterQueues in a cohort: ``nominalQuota`` is guaranteed, unused quota
of the cohort may be *borrowed*, ``preemption.reclaimWithinCohort`` lets a queue take back
its nominal quota from borrowers; kueue.sigs.k8s.io/docs/concepts/cluster_queue) and of
NVIDIA KAI-Scheduler (queues with ``quota`` (deserved), ``overQuotaWeight`` and ``limit``:
each queue first gets its deserved quota, the rest of the cluster is divided in proportion
to the over-quota weights; *reclaim* evicts over-quota work of other queues only to give a
queue its deserved quota — github.com/NVIDIA/KAI-Scheduler docs/fairness, and its
discussion #1763: reclaim "only ever seems to recover a queue's deserved quota").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Queue:
    """One tenant queue for one resource."""

    quota: float  # guaranteed (nominal / deserved)
    weight: float  # over-quota weight
    demand: float  # used + waiting


def fair_shares(queues: Mapping[str, Queue], capacity: float) -> dict[str, float]:
    """KAI's fair share: each queue gets min(demand, quota); what is left is divided by
    over-quota weight among queues that still want more (water-filling, so a queue never
    gets more than its demand)."""
    share = {q: min(s.demand, s.quota) for q, s in queues.items()}
    left = max(capacity - sum(share.values()), 0.0)
    hungry = {q for q, s in queues.items() if s.demand > share[q] + 1e-12 and s.weight > 0}
    while left > 1e-9 and hungry:
        w = sum(queues[q].weight for q in hungry)
        give = {q: left * queues[q].weight / w for q in hungry}
        left = 0.0
        for q in list(hungry):
            want = queues[q].demand - share[q]
            got = min(give[q], want)
            share[q] += got
            left += give[q] - got
            if got >= want - 1e-12:
                hungry.discard(q)
    return share


def admit(used: float, request: float, quota: float, cohort_used: float,
          cohort_capacity: float, borrowing_limit: float = float("inf")) -> bool:  # fmt: skip
    """Kueue admission in a cohort: the workload fits in what the cohort has free, and the
    queue stays within its nominal quota plus its ``borrowingLimit`` (none by default).
    Within its quota but with the cohort full, the caller tries `reclaimable`."""
    if used + request > quota + borrowing_limit + 1e-9:
        return False
    return cohort_used + request <= cohort_capacity + 1e-9


def reclaimable(used: Mapping[str, float], quotas: Mapping[str, float],
                claimant: str, need: float) -> dict[str, float]:  # fmt: skip
    """How much to take back from each borrower (a queue over its quota) so `claimant` gets
    `need` within its own quota — nothing when that would exceed its quota (reclaim restores
    guarantees, not fair share). Biggest borrower first."""
    if used.get(claimant, 0.0) + need > quotas[claimant] + 1e-9:
        return {}
    take: dict[str, float] = {}
    over = sorted(((used[q] - quotas[q], q) for q in used if q != claimant
                   and used[q] > quotas[q] + 1e-9), reverse=True)  # fmt: skip
    for excess, q in over:
        if need <= 1e-9:
            break
        t = min(excess, need)
        take[q] = t
        need -= t
    return take if need <= 1e-9 else {}
