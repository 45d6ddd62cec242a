"""Shared helper: the last steps of every hand-built model here.

Used by datatypes.py, mlp.py and logreg_onnx.py; not meant to be run on its own.
One opset, one IR version and one producer name for the project's models, checked in full.
"""
import os

import onnx
from onnx import helper

OPSET = 17
IR_VERSION = 8


def finish_model(graph):
    """Return the checked onnx.ModelProto of a graph, at the project's opset and IR version."""
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="modelfn-scripts",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def save_model(model, path):
    """Write a model, making its folder, and say where and how large."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
