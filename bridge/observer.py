"""The Prometheus side of a `Window`: utilisation and Triton's counters, read through PromQL.

`Observer.view(at, window_s, elapsed_s)` evaluates `bridge.promql` at the window's end
through `prometheus-api-client`, so what the env sees is what Prometheus shows (scrape
interval, ``rate()`` range), never a privileged view. Ranges never reach back before the
episode started (older samples belong to the previous episode or to idle warm-up): Triton's
counters grow from the last scrape at or before the range's start (`promql.growth`), so a
range reaching t0 starts from the scrape before the first request; `rate()` ranges stay
at least two scrape intervals long so they have two samples.
A series Prometheus has no value for is NaN, as in the twin. Errors are retried with
backoff, then end in a `BackendError` naming the address — except in `view`, which must
not stall the episode: when Prometheus cannot be reached (down, restarting) it tries
`view_retries` times, then returns every figure NaN with ``missing=True`` (the env's
documented fallback for NaN applies; the flag lets a "stale" feature tell an outage
from an idle service).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from bridge import promql
from bridge.promql import Selectors
from kisim.core.config import MetricsConfig
from kisim.core.errors import BackendError


@dataclass(frozen=True, slots=True)
class PromView:
    cpu_util: float
    mem_util: float
    gpu_util: float
    queue_wait_ms: float
    queue_length: float
    mean_batch_size: float
    batches: float  # executions in the window (growth over the window itself)
    batch_items: float
    triton_success: float  # Triton's successful requests in the window (cross-check)
    triton_failures: float
    missing: bool = False  # Prometheus could not be read: every figure above is NaN


MISSING = PromView(*([math.nan] * 10), missing=True)  # type: ignore[arg-type]


class Observer:
    def __init__(
        self,
        url: str,
        metrics: MetricsConfig,
        selectors: Selectors | None = None,
        *,
        retries: int = 4,
        backoff_s: float = 0.5,
        view_retries: int = 1,
        view_timeout_s: float = 5.0,
    ) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.url = url
        self.metrics = metrics
        self.sel = selectors or Selectors()
        self.retries = retries
        self.backoff_s = backoff_s
        self.view_retries = view_retries
        self._episode: tuple[float, float, PromView] | None = None  # (t0, elapsed, view)
        self._prom = PrometheusConnect(url=url, disable_ssl=True)
        # the client's own urllib3 retries take ~6 s per call on a refused connection: the
        # window's view asks once (plus `view_retries`) and gives up within seconds
        self._fast = PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=0),
                                       timeout=view_timeout_s)  # type: ignore[arg-type]  # fmt: skip

    def _query(
        self, query: str, at_unix: float, retries: int | None = None
    ) -> list[dict[str, Any]]:
        """`retries` given: the fast path (no client-side retries, a timeout)."""
        delay = self.backoff_s
        client = self._prom if retries is None else self._fast
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                res: list[dict[str, Any]] = client.custom_query(
                    query, params={"time": f"{at_unix:.3f}"}
                )
                return res
            except Exception as e:  # noqa: BLE001 - client raises requests/API errors alike
                if attempt == retries:
                    raise BackendError(f"{self.url}: Prometheus query failed ({e})") from None
                time.sleep(delay)
                delay *= 2
        return []

    def scalar(self, query: str, at_unix: float, retries: int | None = None) -> float:
        """One instant query's single value (NaN when the result is empty)."""
        res = self._query(query, at_unix, retries)
        if not res:
            return math.nan
        v = float(res[0]["value"][1])
        return v if math.isfinite(v) else math.nan

    def by_label(
        self, query: str, at_unix: float, label: str, retries: int | None = None
    ) -> dict[str, float]:
        """An instant vector as {value of `label`: value} (non-finite values left out)."""
        out: dict[str, float] = {}
        for r in self._query(query, at_unix, retries):
            v = float(r["value"][1])
            if math.isfinite(v):
                out[r["metric"].get(label, "")] = v
        return out

    def view(self, at_unix: float, window_s: float, elapsed_s: float) -> PromView:
        """What Prometheus shows at `at_unix` for a window of `window_s`, `elapsed_s` into it."""
        m, s = self.metrics, self.sel
        floor = 2.0 * m.scrape_interval_s
        rate_r = max(min(m.rate_window_s, elapsed_s), floor)
        # Triton's counters grow from the last scrape at or before the range's start
        # (`promql.growth`): one scrape in the range is enough, and a range reaching back to
        # t0 starts from the scrape before the first request, so a burst at t0 is counted
        one = m.scrape_interval_s
        ratio_r = max(min(max(window_s, m.rate_window_s), elapsed_s), one)
        win_r = max(window_s, one)
        failed: list[str] = []

        def q(query: str, at: float) -> float:
            if failed:  # one unreachable query is enough: do not wait on the others
                return math.nan
            try:
                return self.scalar(query, at, self.view_retries)
            except BackendError as e:
                failed.append(str(e))
                return math.nan

        v = PromView(
            cpu_util=q(promql.cpu_util(s, rate_r), at_unix),
            mem_util=q(promql.mem_util(s), at_unix),
            gpu_util=q(promql.gpu_util(s, rate_r), at_unix),
            queue_wait_ms=q(promql.queue_wait_ms(s, ratio_r), at_unix),
            queue_length=q(promql.queue_length(s), at_unix),
            mean_batch_size=q(promql.mean_batch_size(s, ratio_r), at_unix),
            batches=q(promql.batches(s, win_r), at_unix),
            batch_items=q(promql.batch_items(s, win_r), at_unix),
            triton_success=q(promql.triton_success(s, win_r), at_unix),
            triton_failures=q(promql.triton_failures(s, win_r), at_unix),
        )
        return MISSING if failed else v

    def episode(self, t0_unix: float, elapsed_s: float) -> PromView:
        """The view of the whole episode so far: counters grow from the last scrape at or
        before t0, before the first request. Read once per episode end (the run summary
        asks for several of its figures)."""
        if self._episode is None or self._episode[:2] != (t0_unix, elapsed_s):
            view = self.view(t0_unix + elapsed_s, elapsed_s, elapsed_s)
            self._episode = (t0_unix, elapsed_s, view)
        return self._episode[2]
