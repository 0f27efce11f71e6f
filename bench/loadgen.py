"""A closed-loop load generator for `POST /v1/inspections`, on loopback only.

`concurrency` client threads each keep one HTTP/1.1 connection open and post prebuilt multipart
bodies back to back, so the client costs almost nothing beside the server it measures (they
share the CPU). A run stops after `requests` answers or `seconds`, whichever comes first. The
server's resident memory is sampled from /proc while the load runs.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

LOOPBACK = "127.0.0.1"
UNIQUE_MARK = b"#" * 16  # in a photo's JPEG comment: overwritten per request, so no two are equal


@dataclass(frozen=True)
class Request:
    """One item's photos, encoded once as a multipart body."""

    body: bytes
    content_type: str
    photos: int
    marks: tuple[int, ...] = ()  # offsets of UNIQUE_MARK in the body

    def render(self, serial: int) -> bytes:
        """The body with every photo and the return id made unique: the photo store deduplicates
        equal bytes, and real traffic never repeats a photo, so a benchmark must not either."""
        if not self.marks:
            return self.body
        body = bytearray(self.body)
        for index, offset in enumerate(self.marks):
            body[offset:offset + len(UNIQUE_MARK)] = f"{serial:012d}{index:04d}".encode()
        return bytes(body)

    @classmethod
    def build(cls, photos: Sequence[bytes], category: str = "phone", source: str = "station") -> Request:
        boundary = uuid.uuid4().hex
        parts = []
        # A return id of its own per request, as real traffic has (UNIQUE_MARK is rendered per
        # request): one id shared by thousands of visits would measure the case lookup instead.
        return_id = "RMA-BENCH-" + UNIQUE_MARK.decode()
        for name, value in (("return_id", return_id), ("category", category), ("source", source)):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                         f"{value}\r\n".encode())
        for index, data in enumerate(photos):
            header = (f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; '
                      f'filename="photo{index}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n')
            parts.append(header.encode() + data + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        body = b"".join(parts)
        marks, at = [], body.find(UNIQUE_MARK)
        while at >= 0:
            marks.append(at)
            at = body.find(UNIQUE_MARK, at + len(UNIQUE_MARK))
        return cls(body, f"multipart/form-data; boundary={boundary}", len(photos), tuple(marks))


@dataclass
class Sample:
    started: float  # seconds since the run began
    seconds: float
    status: int
    photos: int
    timings: dict[str, float] = field(default_factory=dict)  # the answer's per-stage timings
    answer_bytes: int = 0


@dataclass
class RunResult:
    concurrency: int
    photos_per_item: int
    wall_s: float
    samples: list[Sample]
    rss_mib: list[tuple[float, float]]  # (seconds since start, server RSS MiB)
    errors: list[str]

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 201]

    @property
    def items_per_s(self) -> float:
        return len(self.ok) / self.wall_s if self.wall_s else 0.0

    @property
    def photos_per_s(self) -> float:
        return sum(s.photos for s in self.ok) / self.wall_s if self.wall_s else 0.0

    def percentile_ms(self, q: float) -> float:
        seconds = [s.seconds for s in self.ok]
        return float(np.percentile(seconds, q) * 1000.0) if seconds else float("nan")

    def stage_means_ms(self) -> dict[str, float]:
        stages: dict[str, list[float]] = {}
        for sample in self.ok:
            for name, value in sample.timings.items():
                stages.setdefault(name, []).append(value)
        return {name: float(np.mean(values)) for name, values in stages.items()}

    def rss_at(self) -> dict[str, float]:
        """Server RSS at the start, middle and end of the run, and its peak (MiB)."""
        if not self.rss_mib:
            return {}
        values = [mib for _, mib in self.rss_mib]
        return {"start": values[0], "middle": values[len(values) // 2], "end": values[-1],
                "peak": max(values)}


def merge(results: Sequence[RunResult]) -> RunResult:
    """Rounds of the same scenario as one result: all samples, summed wall time."""
    first = results[0]
    return RunResult(first.concurrency, first.photos_per_item, sum(r.wall_s for r in results),
                     [s for r in results for s in r.samples], [m for r in results for m in r.rss_mib],
                     [e for r in results for e in r.errors])


def rss_mib(pid: int) -> float:
    """Resident set size of a process and its children threads (VmRSS), in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class _Stop:
    def __init__(self, requests: int, seconds: float):
        self.left = requests
        self.serial = 0
        self.deadline = time.perf_counter() + seconds
        self.lock = threading.Lock()

    def take(self) -> int | None:
        """The next request's serial number, or None when the run is over."""
        with self.lock:
            if self.left <= 0 or time.perf_counter() >= self.deadline:
                return None
            self.left -= 1
            self.serial += 1
            return self.serial


def _client(port: int, path: str, requests: Sequence[Request], stop: _Stop, began: float,
            samples: list[Sample], errors: list[str], offset: int) -> None:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=120)
    while (serial := stop.take()) is not None:
        request = requests[(serial + offset) % len(requests)]
        body = request.render(serial)
        start = time.perf_counter()
        try:
            connection.request("POST", path, body=body,
                               headers={"Content-Type": request.content_type})
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            connection.close()
            connection = http.client.HTTPConnection(LOOPBACK, port, timeout=120)
            continue
        seconds = time.perf_counter() - start
        timings: dict[str, float] = {}
        if response.status == 201:
            timings = json.loads(payload).get("timings", {})
        else:
            errors.append(f"HTTP {response.status}: {payload[:200]!r}")
        samples.append(Sample(start - began, seconds, response.status, request.photos, timings,
                              len(payload)))
    connection.close()


def run_load(port: int, requests: Sequence[Request], concurrency: int, max_requests: int,
             max_seconds: float, server_pid: int | None = None,
             path: str = "/v1/inspections") -> RunResult:
    """Post `requests` round-robin from `concurrency` connections until the count or the time
    runs out; sample the server's RSS every half second."""
    samples: list[Sample] = []
    errors: list[str] = []
    memory: list[tuple[float, float]] = []
    stop = _Stop(max_requests, max_seconds)
    began = time.perf_counter()
    done = threading.Event()

    def sample_memory() -> None:
        while server_pid is not None:
            memory.append((time.perf_counter() - began, rss_mib(server_pid)))
            if done.wait(0.5):
                memory.append((time.perf_counter() - began, rss_mib(server_pid)))
                return

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    clients = [threading.Thread(target=_client, args=(port, path, requests, stop, began, samples,
                                                      errors, index), daemon=True)
               for index in range(concurrency)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    wall = time.perf_counter() - began
    done.set()
    sampler.join(timeout=2)
    return RunResult(concurrency, requests[0].photos, wall, samples, memory, errors)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
