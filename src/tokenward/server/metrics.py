"""Prometheus metrics (``serve --metrics``; off by default, needs the ``metrics`` extra).

Event counters come from the audit stream itself — one logging handler turns each audit event into a
counter increment — so metrics and audit can never disagree. With several workers, ``serve`` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory and /metrics aggregates every worker.
"""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from tokenward.server.model import SigningKey

ENDPOINTS = frozenset({"/token", "/revoke", "/introspect", "/authorize", "/login", "/consent", "/jwks.json",
                       "/device_authorization", "/device",
                       "/.well-known/oauth-authorization-server"})

REQUESTS = Counter("tokenward_http_requests_total", "HTTP requests by endpoint and status.",
                   ["endpoint", "status"])
LATENCY = Histogram("tokenward_http_request_duration_seconds", "Request latency by endpoint.", ["endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
EVENTS = Counter("tokenward_events_total", "Audit events (tokens issued per grant, logins, revocations…).",
                 ["event", "grant_type"])
REUSE = Counter("tokenward_refresh_reuse_detected_total", "Refresh-token or code reuse that revoked a family.")
KEYS = Gauge("tokenward_signing_keys", "Signing keys by state.", ["state"], multiprocess_mode="max")


def endpoint_label(path: str) -> str:
    return path if path in ENDPOINTS else "other"


def observe_request(path: str, status: int, seconds: float) -> None:
    label = endpoint_label(path)
    REQUESTS.labels(label, str(status)).inc()
    LATENCY.labels(label).observe(seconds)


class AuditMetricsHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", record.getMessage())
        EVENTS.labels(event, getattr(record, "grant_type", "")).inc()
        if event in ("refresh.reuse_detected", "code.replay_detected"):
            REUSE.inc()


def install() -> None:
    logging.getLogger("tokenward.audit").addHandler(AuditMetricsHandler())


def record_keys(keys: list[SigningKey]) -> None:
    now = int(time.time())
    for state in ("next", "active", "retired"):
        KEYS.labels(state).set(sum(1 for k in keys if k.published(now) and k.state(now) == state))


def exposition() -> tuple[bytes, str]:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
