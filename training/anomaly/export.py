"""Export one category's memory bank as a small ONNX graph the service runs after the model.

Input `patch_features` (N x C x h x w, the main model's output); the bank is an initializer and
nearest-neighbour search is plain matrix arithmetic, ||a||^2 - 2ab + ||b||^2, minimised over
the bank. Outputs are named after what they are (anomalib's habit): `anomaly_score` (N, the
worst patch) and `anomaly_map` (N x h x w, every patch), both raw distances; normalisation and
the threshold live in the model card.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
INPUT_NAME = "patch_features"
OUTPUT_NAMES = ("anomaly_score", "anomaly_map")


def detector_graph(bank: np.ndarray, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """The ONNX model of a memory bank (M x C)."""
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    channels = bank.shape[1]
    initializers = [
        # -2 b^T folded in once, so the graph does one MatMul and two Adds per query
        numpy_helper.from_array(np.ascontiguousarray(-2.0 * bank.T), "bank_t_neg2"),
        numpy_helper.from_array((bank * bank).sum(axis=1)[None, :], "bank_sq"),
        numpy_helper.from_array(np.array([-1, channels], dtype=np.int64), "rows_shape"),
        numpy_helper.from_array(np.array([0, 2, 3], dtype=np.int64), "nhw_index"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("Transpose", [INPUT_NAME], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "rows_shape"], ["patches"]),  # (N*h*w) x C
        helper.make_node("ReduceSumSquare", ["patches"], ["patch_sq"], axes=[1], keepdims=1),
        helper.make_node("MatMul", ["patches", "bank_t_neg2"], ["cross"]),
        helper.make_node("Add", ["cross", "patch_sq"], ["partial"]),
        helper.make_node("Add", ["partial", "bank_sq"], ["squared"]),
        helper.make_node("ReduceMin", ["squared"], ["nearest_sq"], axes=[1], keepdims=0),
        helper.make_node("Max", ["nearest_sq", "zero"], ["nearest_sq_pos"]),  # rounding < 0
        helper.make_node("Sqrt", ["nearest_sq_pos"], ["nearest"]),
        helper.make_node("Shape", [INPUT_NAME], ["input_shape"]),
        helper.make_node("Gather", ["input_shape", "nhw_index"], ["map_shape"], axis=0),
        helper.make_node("Reshape", ["nearest", "map_shape"], [OUTPUT_NAMES[1]]),
        helper.make_node("ReduceMax", [OUTPUT_NAMES[1]], [OUTPUT_NAMES[0]], axes=[1, 2],
                         keepdims=0),
    ]
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


def save_detector(bank: np.ndarray, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the detector atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    onnx.save(detector_graph(bank, metadata), str(temporary))
    temporary.replace(path)
    return path


def parity(path: Path, bank: np.ndarray, features: np.ndarray) -> float:
    """Largest |ONNX - torch| over the anomaly maps of `features`, relative to the map scale."""
    import onnxruntime as ort

    from training.anomaly.patchcore import nearest_distances

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _, onnx_maps = session.run(list(OUTPUT_NAMES), {INPUT_NAME: features.astype(np.float32)})
    torch_maps = nearest_distances(features, bank)
    return float(np.abs(onnx_maps - torch_maps).max() / max(float(torch_maps.max()), 1e-6))
