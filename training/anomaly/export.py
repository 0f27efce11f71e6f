"""Export one category's memory bank as a small ONNX graph the service runs after the model.

Input `patch_features` (N x C x h x w, the main model's output); the bank is an initializer and
nearest-neighbour search is plain matrix arithmetic, ||a||^2 - 2ab + ||b||^2, minimised over
the bank. Outputs are named after what they are (anomalib's habit): `anomaly_map` (N x h x w,
every patch's distance) and `anomaly_score` (N: the worst patch's distance, density-weighted as
PatchCore does when the detector was fitted with support rows), both raw; normalisation and
the threshold live in the model card. A bank larger than its searched rows is searched in two
passes, as patchcore.two_pass_neighbours does: the first rows for every patch (the map), the
rest for each photo's RERANKED_PATCHES worst (TopK, Gather, ScatterND), which the score takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inspection.atomic import replacing
from training.anomaly.patchcore import RERANKED_PATCHES, PatchCore

OPSET = 17
INPUT_NAME = "patch_features"
OUTPUT_NAMES = ("anomaly_score", "anomaly_map")


def _nearest_nodes(prefix: str, queries: str, queries_sq: str, rows: str, out: str
                   ) -> list[onnx.NodeProto]:
    """`out`: each query's squared distance to its nearest row of the initializer `rows`, whose
    squared norms are the initializer `rows`_sq. -2 a.b in one Gemm against the rows as
    stored."""
    node = helper.make_node
    return [
        node("Gemm", [queries, rows], [f"{prefix}_cross"], alpha=-2.0, transB=1),
        node("Add", [f"{prefix}_cross", queries_sq], [f"{prefix}_partial"]),
        node("Add", [f"{prefix}_partial", f"{rows}_sq"], [f"{prefix}_squared"]),
        node("ReduceMin", [f"{prefix}_squared"], [out], axes=[1], keepdims=0),
    ]


def _rows(name: str, rows: np.ndarray) -> list[onnx.TensorProto]:
    """Bank rows as an initializer, with their squared norms (1 x M) beside them."""
    return [numpy_helper.from_array(rows, name),
            numpy_helper.from_array((rows * rows).sum(axis=1)[None, :], f"{name}_sq")]


def _distance_nodes(node_name: str, squared: str) -> list[onnx.NodeProto]:
    """Squared distances -> distances; rounding can leave an exact match slightly below 0."""
    return [helper.make_node("Max", [squared, "zero"], [f"{node_name}_pos"]),
            helper.make_node("Sqrt", [f"{node_name}_pos"], [node_name])]


def _photo_rows_nodes() -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Where each photo's patches lie in `patches`, for the nodes that look again at a photo's
    worst ones: `per_photo_shape` ([N, -1]), `patches_per_photo` ([h*w]) and `first_row` (N:
    each photo's first row)."""
    node = helper.make_node
    initializers = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one"),
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "hw_index"),
    ]
    nodes = [
        node("Gather", ["input_shape", "axis0"], ["photos"], axis=0),  # [N]
        node("Concat", ["photos", "minus_one"], ["per_photo_shape"], axis=0),
        node("Gather", ["input_shape", "hw_index"], ["map_hw"], axis=0),
        node("ReduceProd", ["map_hw"], ["patches_per_photo"], axes=[0], keepdims=1),  # [h*w]
        node("Gather", ["input_shape", "zero_i"], ["photo_count"], axis=0),
        node("Range", ["zero_i", "photo_count", "one_i"], ["photo_index"]),
        node("Squeeze", ["patches_per_photo", "axis0"], ["patches_per_photo_scalar"]),
        node("Mul", ["photo_index", "patches_per_photo_scalar"], ["first_row"]),
    ]
    return nodes, initializers


def _rerank_nodes() -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes that compare each photo's RERANKED_PATCHES worst patches of the first pass
    (`searched_nearest`) with the rest of the bank, and keep the nearer: `nearest`."""
    node = helper.make_node
    initializers = [
        numpy_helper.from_array(np.array([RERANKED_PATCHES], dtype=np.int64), "reranked"),
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "column_shape"),
    ]
    nodes = [
        node("Reshape", ["searched_nearest", "per_photo_shape"], ["searched_per_photo"]),
        node("Min", ["reranked", "patches_per_photo"], ["rerank_count"]),
        node("TopK", ["searched_per_photo", "rerank_count"], ["rerank_values", "rerank_worst"],
             axis=1),
        node("Unsqueeze", ["first_row", "axis1"], ["first_row_column"]),
        node("Add", ["rerank_worst", "first_row_column"], ["worst_rows_2d"]),  # N x k rows
        node("Reshape", ["worst_rows_2d", "minus_one"], ["worst_rows"]),
        node("Gather", ["patches", "worst_rows"], ["worst_patches"], axis=0),
        node("Gather", ["patch_sq", "worst_rows"], ["worst_patch_sq"], axis=0),
        *_nearest_nodes("rest", "worst_patches", "worst_patch_sq", "bank_rest", "rest_sq"),
        *_distance_nodes("rest_nearest", "rest_sq"),
        node("Gather", ["searched_nearest", "worst_rows"], ["worst_searched"], axis=0),
        node("Min", ["worst_searched", "rest_nearest"], ["worst_nearest"]),
        node("Reshape", ["worst_rows", "column_shape"], ["scatter_index"]),
        node("ScatterND", ["searched_nearest", "scatter_index", "worst_nearest"], ["nearest"]),
    ]
    return nodes, initializers


def detector_graph(bank: np.ndarray, metadata: dict[str, str] | None = None,
                   support: np.ndarray | None = None,
                   searched_rows: int | None = None) -> onnx.ModelProto:
    """The ONNX model of a memory bank (M x C, in coreset order), searched in two passes when
    `searched_rows` < M, with the density-weighted score when `support` (M x k, each bank row's
    nearest rows) is given."""
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    channels = bank.shape[1]
    searched = min(searched_rows or len(bank), len(bank))
    initializers = [
        *_rows("bank_searched", bank[:searched]),
        numpy_helper.from_array(np.array([-1, channels], dtype=np.int64), "rows_shape"),
        numpy_helper.from_array(np.array([0, 2, 3], dtype=np.int64), "nhw_index"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_i"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one_i"),
    ]
    nodes = [
        helper.make_node("Transpose", [INPUT_NAME], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "rows_shape"], ["patches"]),  # (N*h*w) x C
        helper.make_node("ReduceSumSquare", ["patches"], ["patch_sq"], axes=[1], keepdims=1),
        helper.make_node("Shape", [INPUT_NAME], ["input_shape"]),
        *_nearest_nodes("searched", "patches", "patch_sq", "bank_searched", "searched_sq"),
        *_distance_nodes("searched_nearest", "searched_sq"),
    ]
    if searched < len(bank) or support is not None:
        photo_nodes, photo_initializers = _photo_rows_nodes()
        nodes += photo_nodes
        initializers += photo_initializers
    if searched < len(bank):
        rerank_nodes, rerank_initializers = _rerank_nodes()
        nodes += rerank_nodes
        initializers += [*_rows("bank_rest", bank[searched:]), *rerank_initializers]
    else:
        nodes.append(helper.make_node("Identity", ["searched_nearest"], ["nearest"]))
    nodes += [  # the map: every patch against the searched rows; the score: from `nearest`
        helper.make_node("Gather", ["input_shape", "nhw_index"], ["map_shape"], axis=0),
        helper.make_node("Reshape", ["searched_nearest", "map_shape"], [OUTPUT_NAMES[1]]),
    ]
    if support is None:
        nodes += [helper.make_node("Reshape", ["nearest", "map_shape"], ["scored_map"]),
                  helper.make_node("ReduceMax", ["scored_map"], [OUTPUT_NAMES[0]], axes=[1, 2],
                                   keepdims=0)]
    else:
        weighted_nodes, weighted_initializers = _weighted_score(support, searched < len(bank))
        nodes += weighted_nodes
        initializers += weighted_initializers
    used = {name for each in nodes for name in each.input}
    initializers = [tensor for tensor in initializers if tensor.name in used]  # ORT warns else
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


def _weighted_score(support: np.ndarray, two_pass: bool
                    ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes for PatchCore's image score (patchcore.density_weights): the worst patch's
    distance times 1 - softmax(its distances to the k support rows of its nearest bank row)[0].
    Only each photo's worst patch is looked at again (its nearest row over the whole bank, then
    a few k x C gathers)."""
    node = helper.make_node
    whole_bank = ([node("Concat", ["bank_searched", "bank_rest"], ["bank"], axis=0),
                   node("Concat", ["bank_searched_sq", "bank_rest_sq"], ["bank_sq"], axis=1)]
                  if two_pass else
                  [node("Identity", ["bank_searched"], ["bank"]),
                   node("Identity", ["bank_searched_sq"], ["bank_sq"])])
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(support, dtype=np.int64), "support"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
    ]
    nodes = [
        *whole_bank,
        node("Reshape", ["nearest", "per_photo_shape"], ["per_photo"]),  # N x (h*w)
        node("ReduceMax", ["per_photo"], ["worst_distance"], axes=[1], keepdims=0),
        node("ArgMax", ["per_photo"], ["worst"], axis=1, keepdims=0),
        node("Add", ["worst", "first_row"], ["worst_row"]),  # row in `patches`
        node("Gather", ["patches", "worst_row"], ["worst_features"], axis=0),  # N x C
        # the nearest row's index: -2 a.b + ||b||^2 decides it (||a||^2 is the same for all)
        node("Gemm", ["worst_features", "bank"], ["worst_cross"], alpha=-2.0, transB=1),
        node("Add", ["worst_cross", "bank_sq"], ["worst_squared"]),
        node("ArgMin", ["worst_squared"], ["worst_match"], axis=1, keepdims=0),
        node("Gather", ["support", "worst_match"], ["support_rows"], axis=0),  # N x k
        node("Gather", ["bank", "support_rows"], ["support_features"], axis=0),  # N x k x C
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
                  support: np.ndarray | None = None, searched_rows: int | None = None) -> Path:
    """Write the detector atomically (a reader never sees half a file)."""
    with replacing(path) as temporary:
        onnx.save(detector_graph(bank, metadata, support, searched_rows), str(temporary))
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
