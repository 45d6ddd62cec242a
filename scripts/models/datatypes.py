"""Build a pass-through model with one input/output pair per ONNX tensor type.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/datatypes.py
Writes runtime/testing/fixtures/datatypes.onnx: inputs `in_<type>`, outputs
`out_<type>`, each shape ["batch", 3], joined by one Identity node per type.
"""
import os

from onnx import TensorProto, helper

from onnx_model import finish_model, save_model

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "runtime", "testing", "fixtures", "datatypes.onnx")

TYPES = {
    "bool": TensorProto.BOOL,
    "int8": TensorProto.INT8,
    "int16": TensorProto.INT16,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "uint8": TensorProto.UINT8,
    "uint16": TensorProto.UINT16,
    "uint32": TensorProto.UINT32,
    "uint64": TensorProto.UINT64,
    "float16": TensorProto.FLOAT16,
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "string": TensorProto.STRING,
}


def main():
    shape = ["batch", 3]
    inputs, outputs, nodes = [], [], []
    for name, elem_type in TYPES.items():
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem_type, shape))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem_type, shape))
        nodes.append(
            helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"], name=f"identity_{name}")
        )

    save_model(finish_model(helper.make_graph(nodes, "datatypes", inputs, outputs)), OUT)


if __name__ == "__main__":
    main()
