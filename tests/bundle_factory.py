"""A tiny, valid model bundle built without torch, for tests of everything downstream of export.

The graph honours the ONNX contract (BRIEF: `<head>_logits`, `embedding`, `<multi head>_cam`,
`patch_features`) with a few thousand random weights:

    image N x 3 x S x S
      -> Conv 8x8 stride 8, Relu           features N x 8 x S/8 x S/8
      -> per multi head: 1x1 Conv (no bias) = cam; logits = GlobalAveragePool(cam) + bias
      -> per single head: Gemm on the pooled features
      -> embedding: Gemm on the pooled features, L2-normalised
      -> patch_features: 3x3 AveragePool of the features (stride 1)

CAMs sit at stride 8 rather than the real backbone's 32 so a 32-pixel input still has a 4x4
map to draw. Weights are tiny and biases carry `biases[head][label]`, so a test decides what the
model says (e.g. crack at 0.99) whatever photo it sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspection.bundle import seal_bundle
from inspection.card import ONNX_CARD_ID_KEY, ModelCard, PreprocessSpec
from inspection.manifest import file_sha256
from inspection.taxonomy import Taxonomy, load_taxonomy

FEATURES = 8
EMBEDDING_DIM = 16
WEIGHT_SCALE = 0.01  # small enough that the biases decide every prediction


def build_graph(taxonomy: Taxonomy, size: int, biases: Mapping[str, Mapping[str, float]],
                seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    initializers: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    outputs: list[onnx.ValueInfoProto] = []

    def weight(name: str, shape: tuple[int, ...], values: np.ndarray | None = None) -> str:
        array = values if values is not None else rng.normal(0, WEIGHT_SCALE, shape)
        initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    nodes.append(helper.make_node("Conv", ["image", weight("stem_w", (FEATURES, 3, 8, 8))],
                                  ["stem"], strides=[8, 8]))
    nodes.append(helper.make_node("Relu", ["stem"], ["features"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["features"], ["pooled4d"]))
    nodes.append(helper.make_node("Flatten", ["pooled4d"], ["pooled"], axis=1))
    for head in taxonomy.heads:
        count = len(head.labels)
        bias = np.array([biases.get(head.name, {}).get(label, 0.0) for label in head.labels])
        name = f"{head.name}_logits"
        if head.type == "multi":
            cam = f"{head.name}_cam"
            nodes.append(helper.make_node("Conv", ["features", weight(f"{cam}_w", (count, FEATURES, 1, 1))],
                                          [cam]))
            nodes.append(helper.make_node("GlobalAveragePool", [cam], [f"{cam}_pool"]))
            nodes.append(helper.make_node("Flatten", [f"{cam}_pool"], [f"{cam}_flat"], axis=1))
            nodes.append(helper.make_node("Add", [f"{cam}_flat", weight(f"{name}_b", (count,), bias)],
                                          [name]))
        else:
            nodes.append(helper.make_node("Gemm", ["pooled", weight(f"{name}_w", (FEATURES, count)),
                                                   weight(f"{name}_b", (count,), bias)], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", count]))
    # The embedding weights are large, so different photos get clearly different embeddings.
    embed_w = weight("embed_w", (FEATURES, EMBEDDING_DIM), rng.normal(0, 1, (FEATURES, EMBEDDING_DIM)))
    embed_b = weight("embed_b", (EMBEDDING_DIM,), rng.normal(0, 1, EMBEDDING_DIM))
    nodes.append(helper.make_node("Gemm", ["pooled", embed_w, embed_b], ["embed_raw"]))
    nodes.append(helper.make_node("LpNormalization", ["embed_raw"], ["embedding"], axis=1, p=2))
    outputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBEDDING_DIM]))
    for head in taxonomy.heads:
        if head.type == "multi":
            outputs.append(helper.make_tensor_value_info(f"{head.name}_cam", TensorProto.FLOAT,
                                                         ["N", len(head.labels), "h", "w"]))
    nodes.append(helper.make_node("AveragePool", ["features"], ["patch_features"],
                                  kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1],
                                  count_include_pad=0))
    outputs.append(helper.make_tensor_value_info("patch_features", TensorProto.FLOAT,
                                                 ["N", FEATURES, "h8", "w8"]))
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])
    graph = helper.make_graph(nodes, "tiny_inspection", [image], outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the project supports
    onnx.checker.check_model(model)
    return model


def build_bundle(
    bundle_dir: str | Path,
    taxonomy: Taxonomy | None = None,
    size: int = 32,
    biases: Mapping[str, Mapping[str, float]] | None = None,
    thresholds: Mapping[str, object] | None = None,
    temperatures: Mapping[str, float] | None = None,
    name: str = "tiny-test",
    version: str = "0.0.1",
    seed: int = 0,
) -> Path:
    """Write model.onnx + model_card.json (bound by sha256 and model_id) into `bundle_dir`, sealed."""
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    taxonomy = taxonomy or load_taxonomy()
    model = build_graph(taxonomy, size, biases or {}, seed)
    model_id = f"{name}-{version}-{uuid.uuid4().hex[:8]}"
    helper.set_model_props(model, {ONNX_CARD_ID_KEY: model_id})
    onnx_path = bundle_dir / "model.onnx"
    onnx.save(model, onnx_path)
    outputs = {out.name: "test output" for out in model.graph.output}
    card = ModelCard(
        name=name, version=version, model_id=model_id, taxonomy=taxonomy.to_dict(),
        preprocessing=PreprocessSpec(input_size=size), outputs=outputs, backbone="tiny-test",
        onnx_sha256=file_sha256(onnx_path), temperatures=dict(temperatures or {}),
        thresholds=dict(thresholds or {}), code_version="test", created="2026-01-01T00:00:00Z",
    )
    card.save(bundle_dir)
    seal_bundle(bundle_dir)
    return bundle_dir


def write_references(bundle_dir: str | Path, references: Mapping[str, np.ndarray]) -> Path:
    """references.npz: one K x D array of L2-normalised embeddings per category."""
    path = Path(bundle_dir) / "references.npz"
    np.savez(path, **{category: np.asarray(v, dtype=np.float32) for category, v in references.items()})
    seal_bundle(bundle_dir)
    return path


# Predictions a test can rely on: grade A, no damage, every accessory visible.
CLEAN_ITEM = {
    "condition": {"A": 6.0},
    "damage": {label: -6.0 for label in ("scratch", "crack", "dent", "stain", "tear", "broken_part")},
    "accessories": {label: 6.0 for label in ("charger", "cable", "case", "manual", "earbuds",
                                              "ear_tips", "box", "second_shoe")},
}
# A cracked phone without its charger: grade D, crack at ~0.99, charger at ~0.01.
CRACKED_ITEM = {
    "condition": {"D": 6.0},
    "damage": {**CLEAN_ITEM["damage"], "crack": 5.0},
    "accessories": {**CLEAN_ITEM["accessories"], "charger": -5.0},
}


def add_anomaly_detector(bundle_dir: str | Path, category: str, threshold: float,
                         normaliser: float = 1.0, crop: str = "none") -> Path:
    """anomaly/<category>.onnx in the issue-4 contract (input `patch_features` N x C x h x w;
    outputs `anomaly_score` N = the map's maximum, `anomaly_map` N x h x w = the channel mean),
    listed in the card with its sha256, normaliser and threshold."""
    from inspection.card import read_card

    bundle_dir = Path(bundle_dir)
    nodes = [
        helper.make_node("ReduceMean", ["patch_features"], ["map4d"], axes=[1], keepdims=1),
        helper.make_node("Squeeze", ["map4d", "one"], ["anomaly_map"]),
        helper.make_node("ReduceMax", ["anomaly_map"], ["anomaly_score"], axes=[1, 2], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, f"anomaly_{category}",
        [helper.make_tensor_value_info("patch_features", TensorProto.FLOAT, ["N", FEATURES, "h", "w"])],
        [helper.make_tensor_value_info("anomaly_score", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["N", "h", "w"])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = bundle_dir / "anomaly" / f"{category}.onnx"
    path.parent.mkdir(exist_ok=True)
    onnx.save(model, path)
    card = read_card(bundle_dir)
    card.anomaly[category] = {"file": f"anomaly/{category}.onnx", "sha256": file_sha256(path),
                              "normaliser": normaliser, "threshold": threshold, "crop": crop}
    card.save(bundle_dir)
    seal_bundle(bundle_dir)
    return path
