"""One place where kisim talks HTTP to the Kubernetes API: client set-up and retries.

Transient failures (5xx, 429, dropped connections, timeouts) are retried with capped,
jittered exponential backoff; anything else is the caller's to handle (404, 409) or a
one-line :class:`BackendError` naming the API address, so a user at a real cluster
knows which server said what.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection
from typing import TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from bridge.kube_settings import KubeSettings
from kisim.core.errors import BackendError, ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_HINTS = {
    401: "the credentials in the kubeconfig were rejected",
    403: "forbidden; kisim's Role (manifests/kisim/10-rbac.yaml) allows only its namespace",
    404: "not found; are the manifests applied (kubectl apply -f manifests/kisim/)?",
}


def make_api_client(s: KubeSettings) -> client.ApiClient:
    """An ApiClient for the configured kubeconfig/context, with urllib3's retries off."""
    cfg = client.Configuration()
    try:
        if s.in_cluster:
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(
                config_file=str(s.kubeconfig) if s.kubeconfig else None,
                context=s.context,
                client_configuration=cfg,
                persist_config=False,
            )
    except (ConfigException, OSError) as e:
        where = "in-cluster config" if s.in_cluster else f"kubeconfig {s.kubeconfig or '(default)'}"
        raise ConfigError(f"{where}: {str(e).splitlines()[0]}") from None
    # kisim retries itself (with backoff, and not for non-idempotent surprises).
    cfg.retries = urllib3.Retry(total=0, redirect=0, raise_on_status=False)
    return client.ApiClient(cfg)


def describe(err: BaseException) -> str:
    """A one-line description of an API or transport error."""
    if isinstance(err, ApiException):
        reason = (err.reason or "").strip().splitlines()[0] if err.reason else ""
        hint = _HINTS.get(err.status or 0)
        return f"{err.status} {reason}" + (f" ({hint})" if hint else "")
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:300]


class KubeCaller:
    """Runs API calls with retries; raises BackendError naming the API address."""

    def __init__(
        self,
        api: client.ApiClient,
        settings: KubeSettings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self.s = settings
        self.sleep = sleep
        self.host: str = api.configuration.host

    def call(
        self,
        what: str,
        fn: Callable[..., T],
        *args: object,
        expect: Collection[int] = (),
        **kwargs: object,
    ) -> T:
        """``fn(*args, **kwargs)``; statuses in `expect` are re-raised as ApiException."""
        attempts = self.s.retries + 1
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                return fn(*args, _request_timeout=self.s.request_timeout_s, **kwargs)
            except ApiException as e:
                if e.status in expect:
                    raise
                if e.status not in RETRYABLE_STATUS:
                    raise self.error(what, e) from None
                last = e
            except (urllib3.exceptions.HTTPError, OSError) as e:
                last = e
            if attempt + 1 < attempts:
                delay = self._delay(attempt, last)
                log.warning(
                    "Kubernetes API %s: %s: %s; retry in %.2f s",
                    self.host,
                    what,
                    describe(last),
                    delay,
                )
                self.sleep(delay)
        assert last is not None
        raise BackendError(
            f"Kubernetes API {self.host}: {what} failed after {attempts} attempts: {describe(last)}"
        )

    def error(self, what: str, err: BaseException) -> BackendError:
        return BackendError(f"Kubernetes API {self.host}: {what}: {describe(err)}")

    def _delay(self, attempt: int, err: BaseException | None) -> float:
        base = min(self.s.backoff_max_s, self.s.backoff_initial_s * 2**attempt)
        if isinstance(err, ApiException) and err.headers:
            after = err.headers.get("Retry-After")
            if after and after.isdigit():
                base = min(self.s.backoff_max_s, max(base, float(after)))
        return base * random.uniform(0.5, 1.0)
