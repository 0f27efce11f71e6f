"""A real service process for the tests that need one (concurrency, kill -9, several workers):
`returns-inspect serve` on 127.0.0.1 and a free port, with the test keys, a data directory and
an optional database URL. Output goes to a log file the test can read."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from conftest import API_KEYS

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0  # a loaded 2-core machine can take a while to import and load the model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    workers: int = 1
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until /readyz answers 200 and every worker has started (or the process died)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready and self.log().count("Application startup complete") >= self.workers:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready after {timeout:.0f} s:\n{self.log()}")

    def kill(self) -> None:
        """kill -9 the whole process group (uvicorn's workers too): no shutdown, no flush."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(bundle: Path, data_dir: Path, database_url: str | None = None,
                 workers: int = 1, log_name: str = "server.log") -> ServerProcess:
    port = free_port()
    env = {**os.environ, "RETURNS_API_KEYS": API_KEYS, "PYTHONPATH": str(REPO),
           "RETURNS_DATABASE_URL": database_url or ""}
    if not database_url:
        env.pop("RETURNS_DATABASE_URL")
        env.pop("DATABASE_URL", None)
    log_path = data_dir.parent / log_name
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the process is reaped
    command = [sys.executable, "-m", "inspection.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--bundle", str(bundle), "--data-dir", str(data_dir),
               "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                               cwd=REPO, start_new_session=True)
    return ServerProcess(process, port, log_path, workers, log)
