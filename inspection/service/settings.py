"""Service settings from the environment (prefix RETURNS_), e.g.

    RETURNS_API_KEYS="k1:station,k2:operator:alice,k3:admin"
    RETURNS_DATABASE_URL=postgresql+psycopg://user:pass@db/returns   (or plain DATABASE_URL)

Each API key is `key:role[:name]`; the name identifies the caller (owner of an inspection,
reviewer of a review) and defaults to the role plus a short hash of the key, never the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["station", "customer", "operator", "admin"]
ROLES: tuple[str, ...] = ("station", "customer", "operator", "admin")
MIN_KEY_LENGTH = 8  # a shorter key is guessable; refuse it rather than serve behind it


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    @property
    def reads_all(self) -> bool:
        return self.role in ("operator", "admin")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETURNS_", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("RETURNS_DATABASE_URL", "DATABASE_URL"))
    data_dir: Path = Path("data")
    photo_dir: Path | None = None  # default: <data_dir>/photos
    # A folder or an fsspec URL (s3://bucket/photos) that every replica reaches; wins over photo_dir.
    photo_store: str | None = None
    bundle_dir: Path = Path("models/default")
    policy_file: Path | None = None  # default: the packaged inspection/defaults/policy.yaml
    api_keys: str = ""
    dev_mode: bool = False  # no keys, every request allowed: loopback only (`serve` decides)
    max_photos: int = 8
    max_photo_bytes: int = 25_000_000  # a 48 MP phone JPEG is ~15 MB
    max_total_bytes: int = 100_000_000
    max_pixels: int = 64_000_000  # a JPEG (decoded at reduced scale) from its header
    max_full_decode_pixels: int = 24_000_000  # PNG, TIFF, WebP…: decoded in full, so tighter
    max_request_pixels: int = 64_000_000  # pixels actually decoded, summed over a request's photos
    precision: Literal["auto", "fp32", "int8"] = "auto"  # inspection.precision.choose_bundle
    workers: int = 0  # requests decoding + inferring at once (compute.ComputeSlots); 0: one per core
    migrate_on_start: bool = True
    session_secret: str = ""  # signs /ui sessions; default: derived from the API keys
    retention_days: float | None = None  # `returns-inspect purge` deletes inspections older than this
    # How often a replica checks the database for a model reloaded through another; 0: never.
    model_sync_seconds: float = 5.0

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'inspection.db').resolve()}"

    @property
    def resolved_photo_dir(self) -> Path:
        return self.photo_dir or self.data_dir / "photos"

    @property
    def resolved_photo_store(self) -> str | Path:
        return self.photo_store or self.resolved_photo_dir

    def principals(self) -> dict[str, Principal]:
        """API key -> who holds it. Raises ValueError naming the bad entry (never the key)."""
        keys: dict[str, Principal] = {}
        for position, entry in enumerate(filter(None, (e.strip() for e in self.api_keys.split(","))),
                                         start=1):
            parts = entry.split(":")
            if len(parts) not in (2, 3) or parts[1] not in ROLES:
                msg = f"RETURNS_API_KEYS entry {position} must be key:role[:name], role one of {ROLES}"
                raise ValueError(msg)
            key, role = parts[0], parts[1]
            if len(key) < MIN_KEY_LENGTH:
                msg = f"RETURNS_API_KEYS entry {position}: key shorter than {MIN_KEY_LENGTH} characters"
                raise ValueError(msg)
            default_name = f"{role}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
            keys[key] = Principal(name=parts[2] if len(parts) == 3 else default_name, role=role)
        return keys
