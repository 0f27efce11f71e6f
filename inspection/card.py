"""A model is a bundle: `model.onnx` + `model_card.json`, bound to each other by hash.

The card carries everything needed to serve and to judge the model: taxonomy, preprocessing,
output names, calibration temperatures, decision thresholds, metrics, the dataset manifest's
hash, the training config and the code version. The serving side reads preprocessing from the
card and nothing else (STYLE.md habit 2), so training and serving cannot drift apart.

Binding: the card stores the ONNX file's sha256 and the ONNX metadata stores the card's
`model_id`; a bundle whose pair does not match refuses to load.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inspection.atomic import replacing
from inspection.errors import BundleError
from inspection.manifest import file_sha256
from inspection.taxonomy import Taxonomy

CARD_FILE = "model_card.json"
ONNX_FILE = "model.onnx"
CARD_FORMAT = 1
ONNX_CARD_ID_KEY = "returns_inspection.model_id"  # ONNX metadata_props key


@dataclass(frozen=True)
class PreprocessSpec:
    """How a decoded RGB photo becomes the model's input tensor. EfficientNet-Lite's TF weights
    expect (x - 127) / 128 on 0..255 RGB."""

    input_size: int = 224
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    resize: str = "squash"  # whole photo to a square: damage at the edges is never cropped off
    input_name: str = "image"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        return cls(
            input_size=int(data["input_size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            resize=str(data.get("resize", "squash")),
            input_name=str(data.get("input_name", "image")),
        )


@dataclass
class ModelCard:
    name: str
    version: str
    model_id: str  # unique per export; also written into the ONNX metadata
    taxonomy: dict[str, Any]
    preprocessing: PreprocessSpec
    outputs: dict[str, str]  # ONNX output name -> what it means
    backbone: str = "efficientnet_lite0"
    onnx_file: str = ONNX_FILE
    onnx_sha256: str = ""
    temperatures: dict[str, float] = field(default_factory=dict)  # head -> T
    thresholds: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)  # how thresholds were chosen
    metrics: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)  # manifest path + sha256, counts
    training: dict[str, Any] = field(default_factory=dict)  # the run's config
    export: dict[str, Any] = field(default_factory=dict)  # opset, parity, quantisation
    anomaly: dict[str, Any] = field(default_factory=dict)  # per-category detectors (issue 4)
    code_version: str = ""
    created: str = ""
    format: int = CARD_FORMAT

    def get_taxonomy(self) -> Taxonomy:
        return Taxonomy.from_dict(self.taxonomy, where=f"{CARD_FILE} taxonomy")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        values["preprocessing"] = PreprocessSpec.from_dict(data["preprocessing"])
        return cls(**values)

    def save(self, bundle_dir: Path) -> Path:
        """Write atomically so a reader never sees half a card."""
        path = Path(bundle_dir) / CARD_FILE
        with replacing(path) as temporary:
            temporary.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path


def read_card(bundle_dir: str | Path) -> ModelCard:
    path = Path(bundle_dir) / CARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"no {CARD_FILE} in {bundle_dir}") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    try:
        return ModelCard.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: not a model card ({exc})") from None


def verify_bundle(bundle_dir: str | Path) -> ModelCard:
    """Read the card and check the ONNX file is the one it was written for (by sha256).

    The ONNX metadata's model_id is checked by the runtime when it opens the session, since
    that needs onnxruntime."""
    bundle_dir = Path(bundle_dir)
    card = read_card(bundle_dir)
    onnx_path = bundle_dir / card.onnx_file
    if not onnx_path.is_file():
        raise BundleError(f"{onnx_path} is missing")
    actual = file_sha256(onnx_path)
    if actual != card.onnx_sha256:
        msg = (f"{onnx_path} does not match {CARD_FILE}: sha256 {actual[:12]}…, "
               f"card expects {card.onnx_sha256[:12]}…")
        raise BundleError(msg)
    return card
