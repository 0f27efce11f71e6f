"""`returns-inspect export`: checkpoint -> ONNX bundle (model.onnx + model_card.json), checked.

The bundle is written into a temporary folder beside `--out`, loaded back through
`inspection.engine.Engine` (the service's own loader: hash binding, ONNX metadata, session) and
compared with PyTorch on real photos of the manifest's val/test split, decoded and preprocessed
by the service's functions. Only when every logit agrees within 1e-4 and every single-label head
picks the same top-1 on every photo does the folder move into place; otherwise the export fails
(exit 2) and nothing is left behind.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from inspection.bundle import seal_bundle
from inspection.card import ONNX_CARD_ID_KEY, ONNX_FILE, ModelCard, PreprocessSpec
from inspection.engine import MIRROR, Engine
from inspection.errors import InputError, InspectionError
from inspection.manifest import Manifest, Sample, file_sha256, read_manifest
from inspection.preprocess import batch_inputs
from inspection.taxonomy import Taxonomy
from training.calibration import default_thresholds
from training.model import InspectionNet, load_checkpoint
from training.predictions import model_photo
from training.versioning import code_version, utc_now

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4  # max |logit(ONNX) - logit(PyTorch)|, issue 2


class ParityError(InspectionError):
    """The exported graph does not score like the PyTorch model it came from."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="RUN/best.pt")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder, e.g. models/default")
    parser.add_argument("--manifest", type=Path, help="photos for the parity check "
                        "(default: the manifest the checkpoint was trained on)")
    parser.add_argument("--name", help="model name (default: the --out folder's name)")
    parser.add_argument("--version", default="0.1.0", help="model version (default 0.1.0)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default 18)")
    parser.add_argument("--parity-photos", type=int, default=32,
                        help="val/test photos compared with PyTorch (default 32)")
    parser.add_argument("--flip-tta", action="store_true",
                        help="serve each photo's logits averaged with its left-right mirror "
                             "image's: twice the classifier's work; measured +0.023 macro-F1 on "
                             "MVTec bottle, +0.005 on magnetic tile (BENCHMARKS.md)")
    parser.add_argument("--int8", action="store_true",
                        help="also write an INT8 bundle (static quantisation) to OUT-int8")
    parser.add_argument("--int8-calibration-photos", type=int, default=64,
                        help="train photos that calibrate the INT8 activation ranges (default 64)")


def main(args: argparse.Namespace) -> int:
    if args.opset < 17:
        raise InputError(f"opset must be >= 17, got {args.opset}", "--opset")
    if args.parity_photos < 1:
        raise InputError(f"need at least 1 parity photo, got {args.parity_photos}", "--parity-photos")
    model, checkpoint = load_checkpoint(args.checkpoint)
    manifest_path = args.manifest or Path(str(checkpoint.get("manifest") or ""))
    if not str(manifest_path) or not manifest_path.is_file():
        raise InputError(f"manifest {manifest_path} not found; pass --manifest", "--manifest")
    manifest = read_manifest(manifest_path, model.taxonomy)
    card = export_bundle(model, checkpoint, manifest, args.out, name=args.name or args.out.name,
                         version=args.version, opset=args.opset, parity_photos=args.parity_photos,
                         tolerance=PARITY_TOLERANCE, mirror=args.flip_tta)
    parity = card.export["parity"]
    print(f"exported {args.out}: parity max |dlogit| {parity['max_abs_diff']:.2e} on "
          f"{parity['photos']} photos, model_id {card.model_id}")
    if args.int8:
        from training.quantize import quantize_bundle

        report = quantize_bundle(args.out, Path(f"{args.out}-int8"), manifest,
                                 calibration_photos=args.int8_calibration_photos)
        print(f"int8 bundle {args.out}-int8: top-1 agreement {report['top1_agreement']}, "
              f"size x{report['size_ratio']:.2f}, latency x{report['latency_ratio']:.2f}")
    return 0


def export_bundle(model: InspectionNet, checkpoint: dict[str, Any], manifest: Manifest, out: Path,
                  name: str, version: str = "0.1.0", opset: int = 18, parity_photos: int = 32,
                  tolerance: float = PARITY_TOLERANCE, mirror: bool = False) -> ModelCard:
    """Export, bind, check parity, and move into place. Raises ParityError (nothing written).
    `mirror`: the bundle serves test-time mirrored logits (`Engine.run`); set after the parity
    check, which compares the graph's own outputs with PyTorch's."""
    model = model.eval()
    spec = PreprocessSpec.from_dict(checkpoint["preprocessing"])
    out = Path(out)
    if out.exists() and not (out / "model_card.json").is_file():
        raise InputError(f"{out} exists and is not a model bundle; choose another --out", "--out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        model_id = uuid.uuid4().hex
        write_onnx(model, staging / ONNX_FILE, spec, opset, model_id)
        card = make_card(model, checkpoint, manifest, spec, name, version, model_id,
                         onnx_sha256=file_sha256(staging / ONNX_FILE), opset=opset)
        card.save(staging)
        seal_bundle(staging)
        card.export["parity"] = check_parity(model, Engine.load(staging, threads=1), manifest,
                                             parity_photos, tolerance)
        if mirror:
            card.export["test_time_augmentation"] = MIRROR
        card.save(staging)
        seal_bundle(staging)
        replace_dir(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return card


def write_onnx(model: InspectionNet, path: Path, spec: PreprocessSpec, opset: int, model_id: str) -> None:
    """TorchScript exporter: the graph of this fixed-shape CNN traces as is and gives plain,
    stable ONNX; only the batch axis is dynamic."""
    example = torch.zeros(2, 3, spec.input_size, spec.input_size)
    names = list(model.output_names)
    dynamic = {spec.input_name: {0: "batch"}, **{name: {0: "batch"} for name in names}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, chosen on purpose
        torch.onnx.export(model, (example,), str(path), input_names=[spec.input_name],
                          output_names=names, opset_version=opset, dynamic_axes=dynamic,
                          do_constant_folding=True, dynamo=False)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    onnx.helper.set_model_props(graph, {ONNX_CARD_ID_KEY: model_id})
    onnx.save(graph, str(path))


def check_parity(model: InspectionNet, engine: Engine, manifest: Manifest, count: int,
                 tolerance: float) -> dict[str, Any]:
    """Compare every output of the served session with PyTorch on `count` real photos."""
    chosen = parity_samples(manifest, count)
    paths = [manifest.image_path(sample) for sample in chosen]
    spec = engine.card.preprocessing
    batch = batch_inputs([model_photo(path, spec) for path in paths], spec)
    served = engine.run(batch)
    single_photo = engine.run(batch[:1])  # the dynamic batch axis really is dynamic
    with torch.no_grad():
        reference = {name: value.numpy() for name, value in model(torch.from_numpy(batch)).items()}
    differences = {name: float(np.abs(served[name] - reference[name]).max()) for name in reference}
    logit_names = [f"{head.name}_logits" for head in model.taxonomy.heads]
    worst = max(differences[name] for name in logit_names)
    worst = max(worst, *(float(np.abs(single_photo[n][0] - reference[n][0]).max()) for n in logit_names))
    flipped = {
        head.name: int((served[f"{head.name}_logits"].argmax(1)
                        != reference[f"{head.name}_logits"].argmax(1)).sum())
        for head in model.taxonomy.heads if head.type == "single"
    }
    if worst > tolerance or any(flipped.values()):
        msg = (f"ONNX parity check failed on {len(paths)} photos of {manifest.path}: max |dlogit| "
               f"{worst:.3e} (tolerance {tolerance:.0e}), top-1 changed per head {flipped}; "
               f"per output {({k: f'{v:.2e}' for k, v in differences.items()})}; nothing written")
        raise ParityError(msg)
    return {"max_abs_diff": worst, "tolerance": tolerance, "photos": len(paths),
            "top1_changed": flipped, "max_abs_diff_per_output": differences,
            "splits": dict(Counter(sample.split or "none" for sample in chosen))}


def parity_samples(manifest: Manifest, count: int) -> list[Sample]:
    """Val photos first, then test; any split when the manifest has neither (e.g. train only)."""
    ordered = manifest.split("val") + manifest.split("test")
    if not ordered:
        log.warning("%s has no val/test photos; checking parity on other photos", manifest.path)
        ordered = list(manifest.samples)
    return ordered[:count]


def output_meanings(taxonomy: Taxonomy, input_size: int) -> dict[str, str]:
    meanings: dict[str, str] = {}
    cam_side = max(1, input_size // 32)
    for head in taxonomy.heads:
        activation = "softmax over" if head.type == "single" else "one sigmoid per label of"
        meanings[f"{head.name}_logits"] = (f"raw logits, N x {len(head.labels)}; divide by "
                                           f"temperatures[{head.name!r}], then {activation} "
                                           f"{list(head.labels)}")
    meanings["embedding"] = "L2-normalised photo embedding, N x D: item mismatch by cosine similarity"
    for head in taxonomy.heads:
        if head.type == "multi":
            meanings[f"{head.name}_cam"] = (f"class activation maps in logit space, N x "
                                            f"{len(head.labels)} x {cam_side} x {cam_side} (stride 32)")
    meanings["patch_features"] = "mid-level patch features at stride 8, N x C x S/8 x S/8, for anomaly"
    return meanings


def make_card(model: InspectionNet, checkpoint: dict[str, Any], manifest: Manifest, spec: PreprocessSpec,
              name: str, version: str, model_id: str, onnx_sha256: str, opset: int) -> ModelCard:
    taxonomy = model.taxonomy
    trained_on = str(checkpoint.get("manifest") or manifest.path)
    return ModelCard(
        name=name, version=version, model_id=model_id, taxonomy=taxonomy.to_dict(),
        preprocessing=spec, outputs=output_meanings(taxonomy, spec.input_size),
        backbone=str(checkpoint.get("backbone", model.backbone_name)), onnx_sha256=onnx_sha256,
        temperatures={head.name: 1.0 for head in taxonomy.heads},
        thresholds=default_thresholds(taxonomy),
        metrics={"val": checkpoint.get("metrics", {}), "epoch": checkpoint.get("epoch")},
        dataset={"manifest": trained_on,
                 "manifest_sha256": checkpoint.get("manifest_sha256") or manifest.sha256(),
                 "counts": dict(Counter(sample.split or "none" for sample in manifest.samples)),
                 "categories": list(model.categories)},
        training={"config": checkpoint.get("config", {}), "embedding_dim": checkpoint.get("embedding_dim"),
                  "code_version": checkpoint.get("code_version", ""),
                  "libraries": checkpoint.get("libraries", {}),  # the releases that trained it
                  **({"auto": checkpoint["auto"]} if "auto" in checkpoint else {})},  # train --auto
        export={"opset": opset, "exporter": f"torch.onnx (TorchScript) {torch.__version__}",
                "int8": None},
        code_version=code_version(), created=utc_now(),
    )


def replace_dir(staging: Path, out: Path) -> None:
    """Move a finished bundle into place; an older bundle there is swapped out, then removed."""
    if out.exists():
        retired = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(retired)
        staging.rename(out)
        shutil.rmtree(retired)
    else:
        staging.rename(out)
