"""`returns-inspect serve`: the service under uvicorn.

Without API keys the service only runs on a loopback host, in an explicit development mode
that accepts unauthenticated requests; on any other host it refuses to start (exit 2)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from pathlib import Path
from typing import Any

from inspection.decide import load_policy
from inspection.errors import InputError
from inspection.service.db import make_engine, upgrade_to_head
from inspection.service.settings import Settings

log = logging.getLogger("inspection.service")
DEV_MODE_WARNING = (
    "\n" + "!" * 78 + "\n"
    "!! DEVELOPMENT MODE: no API keys configured (RETURNS_API_KEYS). Every request is   !!\n"
    "!! accepted without authentication, with admin rights. Loopback only; never expose. !!\n"
    + "!" * 78)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--bundle", type=Path, help="model bundle directory (RETURNS_BUNDLE_DIR; "
                        "default models/default)")
    parser.add_argument("--data-dir", type=Path, help="database and photos (RETURNS_DATA_DIR; "
                        "default data)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_for(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.bundle is not None:
        overrides["bundle_dir"] = args.bundle
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    settings = Settings(**overrides)
    load_policy(settings.policy_file)  # a broken policy stops here with one line, not in a worker
    try:
        keys = settings.principals()
    except ValueError as exc:
        raise InputError(str(exc), "RETURNS_API_KEYS") from None
    if not keys:
        if not is_loopback(args.host):
            msg = (f"refusing to serve on {args.host} without API keys; set RETURNS_API_KEYS="
                   "'key:role,...' (roles: station, customer, operator, admin), or serve on "
                   "127.0.0.1 for development")
            raise InputError(msg, "--host")
        settings = settings.model_copy(update={"dev_mode": True})
    return settings


def main(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_for(args)
    if settings.dev_mode:
        log.warning(DEV_MODE_WARNING)
    # Workers re-create the app from the environment, so pass the resolved settings on.
    os.environ.update({"RETURNS_BUNDLE_DIR": str(settings.bundle_dir),
                       "RETURNS_DATA_DIR": str(settings.data_dir),
                       "RETURNS_DEV_MODE": "true" if settings.dev_mode else "false"})
    log.info("serving bundle %s, data in %s, on http://%s:%d", settings.bundle_dir,
             settings.data_dir, args.host, args.port)
    if settings.migrate_on_start:  # once, before any worker serves (workers find it at head)
        upgrade_to_head(make_engine(settings.resolved_database_url))
    uvicorn.run("inspection.service.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="info", proxy_headers=True)
    return 0
