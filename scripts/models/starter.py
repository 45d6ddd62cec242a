"""The starter model `modelfn new <name>` copies when no --model is given: it doubles its input.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/starter.py
Writes cli/templates/starter.onnx: input `x` FP32 [-1, 3] -> output `y` = 2 * x, FP32 [-1, 3].
It is a placeholder that shows the shape of a function; replace it with a real model.
"""
import os

import onnx
from onnx import TensorProto, helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "cli", "templates", "starter.onnx")


def main():
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "starter_double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[two],
    )
    model = helper.make_model(graph, producer_name="modelfn", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    onnx.save(model, OUT)
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
