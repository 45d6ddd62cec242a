"""A model with iris's interface that loads and passes the warm-up but fails on real flowers.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/fails_on_real_inputs.py
Writes test/e2e/fixtures/fails-on-real-inputs.onnx, the bad version that test/e2e/rollout.test.ts
rolls out and expects to be rolled back.

Input `input` float32 [batch, 4] and outputs `probabilities` float32 [batch, 3] and `label` int64
[batch], as iris's. The measurements are cast to int64 and used as Gather indices into a
4-element constant: the warm-up's zeros (no example is declared) pick element 0 and pass, while a
real flower's 5.1 cm becomes index 5, out of bounds, and onnxruntime fails the run (a 500).
"""
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from onnx_model import finish_model, save_model

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "test", "e2e", "fixtures", "fails-on-real-inputs.onnx")


def main():
    table = np.array([0.5, 1.0, 1.5, 2.0], dtype=np.float32)
    weights = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.float32)
    bias = np.zeros(3, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["input"], ["indices"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "indices"], ["looked_up"], axis=0),
            helper.make_node("Gemm", ["looked_up", "weights", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        "fails_on_real_inputs",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(bias, "bias")],
    )
    save_model(finish_model(graph), OUT)


if __name__ == "__main__":
    main()
