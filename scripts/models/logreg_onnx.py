"""Shared helper: hand-build an ONNX graph for a fitted multinomial LogisticRegression.

Used by iris.py and digits.py; not meant to be run on its own.
Graph: Gemm(input, W, b, transB=1) -> Softmax(axis=1) -> `probabilities`,
       ArgMax(probabilities, axis=1, keepdims=0) -> `label` (int64).
"""
import json
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from onnx_model import finish_model


def logreg_to_onnx(clf, name):
    """Return an onnx.ModelProto equivalent to clf.predict_proba / clf.predict."""
    coef = np.asarray(clf.coef_, dtype=np.float32)  # [classes, features]
    intercept = np.asarray(clf.intercept_, dtype=np.float32)  # [classes]
    n_classes, n_features = coef.shape

    nodes = [
        helper.make_node("Gemm", ["input", "W", "b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_features])],
        outputs=[
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_classes]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=[
            numpy_helper.from_array(coef, "W"),
            numpy_helper.from_array(intercept, "b"),
        ],
    )
    return finish_model(graph)


def write_json(path, data):
    """Write a flat dict as JSON, one key per line and one matrix row per line."""

    def fmt(value):
        if isinstance(value, list) and value and isinstance(value[0], list):
            return "[\n    " + ",\n    ".join(json.dumps(r) for r in value) + "\n  ]"
        return json.dumps(value)

    body = ",\n".join(f"  {json.dumps(k)}: {fmt(v)}" for k, v in data.items())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("{\n" + body + "\n}\n")


def expected_vectors(clf, rows):
    """sklearn reference outputs (float64 probabilities, int labels) for some rows."""
    rows = np.asarray(rows, dtype=np.float64)
    return {
        "rows": rows.tolist(),
        "probabilities": clf.predict_proba(rows).tolist(),
        "label": [int(v) for v in clf.predict(rows)],
    }
