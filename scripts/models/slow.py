"""A deliberately slow model for timeout tests: `iterations` rounds of a 256x256 MatMul + Tanh.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/slow.py
Writes runtime/testing/fixtures/slow.onnx: inputs `x` float32 [batch, 256] and `iterations` int64
[1]; output `y` float32 [batch, 256]. The caller picks how long a run takes.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "runtime", "testing", "fixtures", "slow.onnx")


def main():
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((256, 256)) / 16).astype(np.float32)
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["state_in", "W"], ["product"]),
            helper.make_node("Tanh", ["product"], ["state_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "round",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, ["batch", 256]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, ["batch", 256]),
        ],
        [numpy_helper.from_array(w, "W")],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Squeeze", ["iterations"], ["trips"]),
            helper.make_node("Loop", ["trips", "keep_going", "x"], ["y"], body=body),
        ],
        "slow",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256]),
            helper.make_tensor_value_info("iterations", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 256])],
        [numpy_helper.from_array(np.array(True), "keep_going")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, OUT)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
