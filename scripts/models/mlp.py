"""Build a compute-heavy benchmark MLP (784-1024-1024-10) with fixed random weights.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/mlp.py
Writes bench/models/mlp.onnx: input `input` float32 [batch, 784] ->
Gemm+Relu -> Gemm+Relu -> Gemm -> Softmax -> `probabilities` float32 [batch, 10].
Weights use He-normal scaling (std = sqrt(2 / fan_in)), numpy seed 0; biases are zero.
"""
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from onnx_model import finish_model, save_model

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "bench", "models", "mlp.onnx")
SIZES = [784, 1024, 1024, 10]


def main():
    rng = np.random.default_rng(0)
    initializers, nodes = [], []
    x = "input"
    n_layers = len(SIZES) - 1
    for i, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        w = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = np.zeros(fan_out, dtype=np.float32)
        initializers += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [f"fc{i}"]))
        x = f"fc{i}"
        if i < n_layers - 1:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"]))
            x = f"relu{i}"
    nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=1))

    graph = helper.make_graph(
        nodes,
        "mlp_bench",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", SIZES[0]])],
        outputs=[
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", SIZES[-1]])
        ],
        initializer=initializers,
    )
    save_model(finish_model(graph), OUT)


if __name__ == "__main__":
    main()
