"""The bundle's seal: `bundle.json` binds every file a decision depends on by sha256.

The card already binds `model.onnx` (its sha256) and the anomaly detectors (theirs), but
nothing bound the card itself: a one-byte edit of a threshold or a temperature loaded silently.
The card cannot hash itself, so a small manifest beside it does:

    {"format": 1, "model_id": "...", "files": {"model.onnx": "<sha256>", "model_card.json": ...,
     "references.npz": ..., "anomaly/phone.onnx": ...}, "signature": "<hmac>" | null}

Loading checks that every decision file present is listed, every listed file is present, each
hash matches, and `model_id` is the card's (which the ONNX metadata must also carry). With
RETURNS_BUNDLE_KEY set, sealing signs the manifest (HMAC-SHA256) and loading refuses a bundle
whose signature is missing or wrong, so an edit needs the key, not just a re-seal.

Sealing is a step of its own (`returns-inspect bundle seal DIR`), re-run by export, calibrate,
quantize and `anomaly fit` whenever they rewrite a file of the bundle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspection.atomic import replacing
from inspection.card import CARD_FILE, ModelCard, read_card
from inspection.errors import BundleError
from inspection.manifest import file_sha256

SEAL_FILE = "bundle.json"
SEAL_FORMAT = 1
KEY_ENV = "RETURNS_BUNDLE_KEY"
OPTIONAL_FILES = ("references.npz", "policy.yaml")  # sealed when the bundle carries them
RESEAL_HINT = "re-seal it after a deliberate change: returns-inspect bundle seal"


@dataclass(frozen=True)
class Seal:
    model_id: str
    files: dict[str, str]  # path relative to the bundle -> sha256
    signature: str | None = None
    policy_sha256: str | None = None  # pinned: the service must decide with exactly this policy

    def payload(self) -> bytes:
        """What the signature covers: everything but the signature, in a canonical form."""
        body = {"format": SEAL_FORMAT, "model_id": self.model_id, "files": self.files,
                **({"policy_sha256": self.policy_sha256} if self.policy_sha256 else {})}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        return {"format": SEAL_FORMAT, "model_id": self.model_id, "files": self.files,
                "policy_sha256": self.policy_sha256, "signature": self.signature}


def bundle_key() -> bytes | None:
    key = os.environ.get(KEY_ENV, "")
    return key.encode() if key else None


def sign(seal: Seal, key: bytes) -> str:
    return hmac.new(key, seal.payload(), hashlib.sha256).hexdigest()


def decision_files(bundle_dir: Path, card: ModelCard) -> list[str]:
    """Every file of the bundle that a decision depends on, relative to the bundle."""
    files = {CARD_FILE, card.onnx_file}
    files.update(str(entry["file"]) for entry in card.anomaly.values())
    files.update(name for name in OPTIONAL_FILES if (bundle_dir / name).exists())
    anomaly_dir = bundle_dir / "anomaly"
    if anomaly_dir.is_dir():  # a detector the card does not list is still refused, not ignored
        files.update(f"anomaly/{path.name}" for path in anomaly_dir.glob("*.onnx"))
    return sorted(files)


def seal_bundle(bundle_dir: str | Path, key: bytes | None = None,
                policy: Path | None = None) -> Seal:
    """Hash every decision file and write bundle.json atomically; sign it when a key is given
    (default: RETURNS_BUNDLE_KEY). `policy` pins the policy file the service must use; a
    re-seal without one keeps the pin the bundle already had."""
    bundle_dir = Path(bundle_dir)
    card = read_card(bundle_dir)
    pinned = file_sha256(policy) if policy is not None else previous_policy_pin(bundle_dir)
    files = {}
    for name in decision_files(bundle_dir, card):
        path = bundle_dir / name
        if not path.is_file():
            raise BundleError(f"{path} is listed in {CARD_FILE} but missing; cannot seal")
        files[name] = file_sha256(path)
    seal = Seal(model_id=card.model_id, files=files, policy_sha256=pinned)
    key = key if key is not None else bundle_key()
    if key:
        seal = Seal(seal.model_id, seal.files, sign(seal, key), pinned)
    target = bundle_dir / SEAL_FILE
    with replacing(target) as temporary:
        temporary.write_text(json.dumps(seal.to_dict(), indent=2, sort_keys=True) + "\n")
    return seal


def previous_policy_pin(bundle_dir: Path) -> str | None:
    try:
        return read_seal(bundle_dir).policy_sha256
    except BundleError:
        return None


def check_policy_pin(seal: Seal, policy_sha256: str, policy_name: str | Path) -> None:
    """A bundle sealed with a pinned policy is refused beside any other policy."""
    if seal.policy_sha256 and policy_sha256 != seal.policy_sha256:
        raise BundleError(f"the bundle was sealed for a policy with sha256 {seal.policy_sha256[:12]}…; "
                          f"the policy in use ({policy_name}) is {policy_sha256[:12]}… (serve with "
                          "that policy, or re-seal with --policy)")


def read_seal(bundle_dir: Path) -> Seal:
    path = bundle_dir / SEAL_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir} is not sealed (no {SEAL_FILE}); {RESEAL_HINT} "
                          f"{bundle_dir}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not a readable seal ({exc})") from None
    try:
        if data["format"] != SEAL_FORMAT:
            raise ValueError(f"format {data['format']!r}, expected {SEAL_FORMAT}")
        files = {str(name): str(digest) for name, digest in dict(data["files"]).items()}
        return Seal(str(data["model_id"]), files, data.get("signature"), data.get("policy_sha256"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{path}: not a bundle seal ({exc})") from None


def verify_seal(bundle_dir: str | Path, card: ModelCard, key: bytes | None = None) -> Seal:
    """Raise BundleError naming every file that differs from the seal; return the seal."""
    bundle_dir = Path(bundle_dir)
    seal = read_seal(bundle_dir)
    key = key if key is not None else bundle_key()
    if key and not (seal.signature and hmac.compare_digest(seal.signature, sign(seal, key))):
        raise BundleError(f"{bundle_dir / SEAL_FILE}: signature missing or wrong for the key in "
                          f"{KEY_ENV}; the bundle was not sealed with this key")
    problems = seal_problems(bundle_dir, card, seal)
    if problems:
        raise BundleError(f"{bundle_dir} does not match its seal: {'; '.join(problems)}; "
                          f"{RESEAL_HINT} {bundle_dir}")
    return seal


def seal_problems(bundle_dir: Path, card: ModelCard, seal: Seal) -> list[str]:
    problems = []
    if seal.model_id != card.model_id:
        problems.append(f"sealed for model_id {seal.model_id!r}, the card says {card.model_id!r}")
    expected_files = decision_files(bundle_dir, card)
    for name in expected_files:
        if name not in seal.files:
            problems.append(f"{name} is not sealed")
    for name, expected in sorted(seal.files.items()):
        path = bundle_dir / name
        if name not in (*expected_files, *OPTIONAL_FILES):  # nor ../ paths in a crafted seal
            problems.append(f"{name} is sealed but is not a file of this bundle")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif (actual := file_sha256(path)) != expected:
            problems.append(f"{name} changed (sha256 {actual[:12]}…, sealed {expected[:12]}…)")
    return problems
