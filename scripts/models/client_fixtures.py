"""Two small fixtures for what standard clients send.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/client_fixtures.py
Writes to runtime/testing/fixtures/:
- normalizer.onnx: a model that needs a locale. One StringNormalizer, which onnxruntime builds
  on the en_US.UTF-8 locale (its default `locale` attribute) when the session is created.
  Input `text` (BYTES [n]), output `normalized` (BYTES [m]): the strings upper-cased, the stop
  words "the" and "a" (any case) left out.
- wide-integers.onnx: a one-input echo of 64-bit integers, for /predict beyond 2^53. Input `x`
  (INT64 [batch, 2]), outputs `same` (x unchanged) and `unsigned` (x cast to UINT64).
"""
import os

import onnx
from onnx import TensorProto, helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "runtime", "testing", "fixtures")


def save(graph, file):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="modelfn")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(FIXTURES, file)
    onnx.save(model, path)
    print(f"wrote {os.path.relpath(path, ROOT)}")


def normalizer():
    node = helper.make_node(
        "StringNormalizer", ["text"], ["normalized"],
        case_change_action="UPPER", is_case_sensitive=0, stopwords=["the", "a"],
    )
    return helper.make_graph(
        [node], "normalizer",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("normalized", TensorProto.STRING, ["m"])],
    )


def wide_integers():
    return helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["same"]),
            helper.make_node("Cast", ["x"], ["unsigned"], to=TensorProto.UINT64),
        ],
        "wide_integers",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["batch", 2])],
        [
            helper.make_tensor_value_info("same", TensorProto.INT64, ["batch", 2]),
            helper.make_tensor_value_info("unsigned", TensorProto.UINT64, ["batch", 2]),
        ],
    )


if __name__ == "__main__":
    save(normalizer(), "normalizer.onnx")
    save(wide_integers(), "wide-integers.onnx")
