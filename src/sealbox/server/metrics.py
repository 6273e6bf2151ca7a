"""Prometheus metrics, aggregated across worker processes.

`sealbox serve` points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the
workers start, so every worker's counters land in one view.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "sealbox_requests_total",
    "API requests by service, operation and outcome (ok or the AWS error code).",
    ["service", "operation", "outcome"],
)
LATENCY = Histogram(
    "sealbox_request_duration_seconds",
    "API request latency by service and operation.",
    ["service", "operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
INTERNAL_KMS = Counter(
    "sealbox_kms_internal_operations_total",
    "KMS operations performed internally on behalf of another service.",
    ["operation", "caller_service"],
)

# Known label sets start at zero, so dashboards see the series before the first use.
for _operation in ("GenerateDataKey", "Decrypt", "EnsureAwsManagedKey"):
    for _service in ("s3", "ebs"):
        INTERNAL_KMS.labels(_operation, _service)


_request_children: dict[tuple[str, str, str], Any] = {}
_latency_children: dict[tuple[str, str], Any] = {}


def observe_request(service: str, operation: str, outcome: str, seconds: float) -> None:
    """Count one API request and its latency (label children cached: hot path)."""
    key = (service, operation, outcome)
    counter = _request_children.get(key)
    if counter is None:
        counter = _request_children[key] = REQUESTS.labels(service, operation, outcome)
    counter.inc()
    histogram = _latency_children.get(key[:2])
    if histogram is None:
        histogram = _latency_children[key[:2]] = LATENCY.labels(service, operation)
    histogram.observe(seconds)


def count_internal_kms(operation: str, caller_service: str) -> None:
    INTERNAL_KMS.labels(operation, caller_service).inc()


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
