"""The real service in a subprocess for benchmarks: `returns-inspect serve` under uvicorn on a
free loopback port, a throw-away data directory, SQLite unless a PostgreSQL URL is given."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from bench.loadgen import LOOPBACK

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`with ServerProcess(bundle) as server:` -> server.port, server.pid; stopped on exit."""

    def __init__(self, bundle: Path, database_url: str | None = None, startup_s: float = 120.0,
                 root: Path = ROOT, serve_args: tuple[str, ...] = ()):
        """`root`: the checkout whose code serves (another one measures a version before);
        `serve_args`: more `returns-inspect serve` options (e.g. `--workers 2`)."""
        self.bundle = bundle.resolve()
        self.root = root.resolve()
        self.database_url = database_url
        self.serve_args = serve_args
        self.startup_s = startup_s
        self.port = free_port()
        self._data = tempfile.TemporaryDirectory(prefix="bench-service-")
        self._process: subprocess.Popen[bytes] | None = None
        self._log = Path(self._data.name) / "server.log"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": str(self.root)}
        env.pop("RETURNS_API_KEYS", None)  # development mode: loopback, no keys
        if self.database_url:
            env["RETURNS_DATABASE_URL"] = self.database_url
        command = [sys.executable, "-m", "inspection.cli", "serve", "--host", LOOPBACK,
                   "--port", str(self.port), "--bundle", str(self.bundle),
                   "--data-dir", self._data.name, *self.serve_args]
        with open(self._log, "wb") as log:
            self._process = subprocess.Popen(command, cwd=self.root, env=env, stdout=log,
                                             stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self._log.read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=2)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready in {self.startup_s:.0f} s")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._data.cleanup()

    def metrics_text(self) -> str:
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=10)
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
