"""Export one category's memory bank as a small ONNX graph the service runs after the model.

Input `patch_features` (N x C x h x w, the main model's output); the bank is an initializer and
nearest-neighbour search is plain matrix arithmetic, ||a||^2 - 2ab + ||b||^2, minimised over
the bank. Outputs are named after what they are (anomalib's habit): `anomaly_map` (N x h x w,
every patch's distance) and `anomaly_score` (N: the worst patch's distance, density-weighted as
PatchCore does when the detector was fitted with support rows), both raw; normalisation and
the threshold live in the model card.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.anomaly.patchcore import PatchCore

OPSET = 17
INPUT_NAME = "patch_features"
OUTPUT_NAMES = ("anomaly_score", "anomaly_map")


def detector_graph(bank: np.ndarray, metadata: dict[str, str] | None = None,
                   support: np.ndarray | None = None) -> onnx.ModelProto:
    """The ONNX model of a memory bank (M x C), with the density-weighted score when `support`
    (M x k, each bank row's nearest rows) is given."""
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    channels = bank.shape[1]
    initializers = [
        numpy_helper.from_array(bank, "bank"),
        numpy_helper.from_array((bank * bank).sum(axis=1)[None, :], "bank_sq"),
        numpy_helper.from_array(np.array([-1, channels], dtype=np.int64), "rows_shape"),
        numpy_helper.from_array(np.array([0, 2, 3], dtype=np.int64), "nhw_index"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Transpose", [INPUT_NAME], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "rows_shape"], ["patches"]),  # (N*h*w) x C
        helper.make_node("ReduceSumSquare", ["patches"], ["patch_sq"], axes=[1], keepdims=1),
        # -2 a.b for every (patch, bank row): one Gemm against the bank as stored
        helper.make_node("Gemm", ["patches", "bank"], ["cross"], alpha=-2.0, transB=1),
        helper.make_node("Add", ["cross", "patch_sq"], ["partial"]),
        helper.make_node("Add", ["partial", "bank_sq"], ["squared"]),
        helper.make_node("ReduceMin", ["squared"], ["nearest_sq"], axes=[1], keepdims=0),
        helper.make_node("Max", ["nearest_sq", "zero"], ["nearest_sq_pos"]),  # rounding < 0
        helper.make_node("Sqrt", ["nearest_sq_pos"], ["nearest"]),
        helper.make_node("Shape", [INPUT_NAME], ["input_shape"]),
        helper.make_node("Gather", ["input_shape", "nhw_index"], ["map_shape"], axis=0),
        helper.make_node("Reshape", ["nearest", "map_shape"], [OUTPUT_NAMES[1]]),
    ]
    if support is None:
        nodes.append(helper.make_node("ReduceMax", [OUTPUT_NAMES[1]], [OUTPUT_NAMES[0]],
                                      axes=[1, 2], keepdims=0))
    else:
        weighted_nodes, weighted_initializers = _weighted_score(support)
        nodes += weighted_nodes
        initializers += weighted_initializers
    graph = helper.make_graph(
        nodes, "patchcore_nearest_neighbour",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", channels, "h", "w"])],
        [helper.make_tensor_value_info(OUTPUT_NAMES[0], TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info(OUTPUT_NAMES[1], TensorProto.FLOAT, ["N", "h", "w"])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="returns-inspection")
    model.ir_version = 8  # readable by every onnxruntime >= 1.10
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model


def _weighted_score(support: np.ndarray) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes for PatchCore's image score (patchcore.density_weights): the worst patch's
    distance times 1 - softmax(its distances to the k support rows of its nearest bank row)[0].
    Only each photo's worst patch is looked at again, so this costs a few k x C gathers."""
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(support, dtype=np.int64), "support"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_i"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one_i"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
    ]
    node = helper.make_node
    nodes = [
        node("Gather", ["input_shape", "axis0"], ["photos"], axis=0),  # [N]
        node("Concat", ["photos", "minus_one"], ["per_photo_shape"], axis=0),
        node("Reshape", ["nearest", "per_photo_shape"], ["per_photo"]),  # N x (h*w)
        node("ReduceMax", ["per_photo"], ["worst_distance"], axes=[1], keepdims=0),
        node("ArgMax", ["per_photo"], ["worst"], axis=1, keepdims=0),
        node("Shape", ["per_photo"], ["per_photo_dims"]),
        node("Gather", ["per_photo_dims", "one_i"], ["patches_per_photo"], axis=0),
        node("Gather", ["input_shape", "zero_i"], ["photo_count"], axis=0),
        node("Range", ["zero_i", "photo_count", "one_i"], ["photo_index"]),
        node("Mul", ["photo_index", "patches_per_photo"], ["first_row"]),
        node("Add", ["worst", "first_row"], ["worst_row"]),  # row in `patches`
        node("Gather", ["squared", "worst_row"], ["worst_squared"], axis=0),  # N x M
        node("ArgMin", ["worst_squared"], ["worst_match"], axis=1, keepdims=0),
        node("Gather", ["support", "worst_match"], ["support_rows"], axis=0),  # N x k
        node("Gather", ["bank", "support_rows"], ["support_features"], axis=0),  # N x k x C
        node("Gather", ["patches", "worst_row"], ["worst_features"], axis=0),  # N x C
        node("Unsqueeze", ["worst_features", "axis1"], ["worst_features_3d"]),
        node("Sub", ["support_features", "worst_features_3d"], ["support_diff"]),
        node("ReduceSumSquare", ["support_diff"], ["support_sq"], axes=[2], keepdims=0),
        node("Sqrt", ["support_sq"], ["support_distance"]),
        node("Softmax", ["support_distance"], ["support_softmax"], axis=1),
        node("Gather", ["support_softmax", "zero_i"], ["match_share"], axis=1),
        node("Sub", ["one", "match_share"], ["weight"]),
        node("Mul", ["worst_distance", "weight"], [OUTPUT_NAMES[0]]),
    ]
    return nodes, initializers


def save_detector(bank: np.ndarray, path: Path, metadata: dict[str, str] | None = None,
                  support: np.ndarray | None = None) -> Path:
    """Write the detector atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    onnx.save(detector_graph(bank, metadata, support), str(temporary))
    temporary.replace(path)
    return path


def parity(path: Path, detector: PatchCore, features: np.ndarray) -> float:
    """Largest |ONNX - torch| over the anomaly maps and scores of `features`, relative to the
    map's scale."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_scores, onnx_maps = session.run(list(OUTPUT_NAMES),
                                         {INPUT_NAME: features.astype(np.float32)})
    torch_scores, torch_maps = detector.score(features)
    scale = max(float(torch_maps.max()), 1e-6)
    return max(float(np.abs(onnx_maps - torch_maps).max()),
               float(np.abs(onnx_scores - torch_scores).max())) / scale
