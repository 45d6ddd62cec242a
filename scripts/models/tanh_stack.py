"""Build the overload benchmark's model that cannot batch: a fixed batch of one.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/tanh_stack.py
Writes bench/models/tanh-stack.onnx: input `input` float32 [1, 1024] -> eight times
(MatMul with a 1024x1024 weight, Tanh) -> `output` float32 [1, 1024]. Weights are normal with
std 1/sqrt(1024) (numpy seed 0), so activations stay in Tanh's useful range. About 5 ms a run
on the project's machine: a model whose requests queue, one run at a time.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "bench", "models", "tanh-stack.onnx")
WIDTH = 1024
LAYERS = 8


def main():
    rng = np.random.default_rng(0)
    initializers, nodes = [], []
    x = "input"
    for i in range(LAYERS):
        w = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
        initializers.append(numpy_helper.from_array(w, f"W{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"W{i}"], [f"mm{i}"]))
        y = "output" if i == LAYERS - 1 else f"tanh{i}"
        nodes.append(helper.make_node("Tanh", [f"mm{i}"], [y]))
        x = y
    graph = helper.make_graph(
        nodes,
        "tanh_stack",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, WIDTH])],
        outputs=[helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, WIDTH])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelfn-scripts")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    onnx.save(model, OUT)


if __name__ == "__main__":
    main()
