"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

from fastapi import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("returns_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("returns_http_request_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.inspections = Counter("returns_inspections", "inspections scored", ["source"],
                                   registry=self.registry)
        self.flags = Counter("returns_flags_raised", "flags raised, by kind", ["kind"],
                             registry=self.registry)
        self.stages = Histogram("returns_stage_seconds", "where an inspection's time goes: queue, "
                                "decode, inference, anomaly, storage, database", ["stage"],
                                buckets=STAGE_BUCKETS, registry=self.registry)
        self.model = Info("returns_model", "the model being served", registry=self.registry)
        self.reloads = Counter("returns_model_reloads", "model reloads", ["outcome"],
                               registry=self.registry)

    def observe_stages(self, timings: dict[str, float]) -> None:
        """An answer's `timings` (`<stage>_ms`) into the stage histogram; total_ms is the HTTP one."""
        for name, milliseconds in timings.items():
            if name != "total_ms" and name.endswith("_ms"):
                self.stages.labels(name.removesuffix("_ms")).observe(milliseconds / 1000.0)

    def set_model(self, name: str, version: str, model_id: str) -> None:
        self.model.info({"name": name, "version": version, "model_id": model_id})

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request; `route` is the template (/v1/inspections/{inspection_id}), never the raw
        path, so the label set stays bounded (middleware.ServiceMiddleware calls this)."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
