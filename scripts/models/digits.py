"""Train a LogisticRegression on sklearn's 8x8 digits data and export it to ONNX by hand.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/digits.py
Writes functions/digits/model.onnx (the only file in that folder: it is the
zero-code example) and runtime/testing/fixtures/digits-expected.json. The model carries its
own documentation in its ONNX metadata, which the runtime reads for folders without a
declaration: doc_string (the description) and metadata_props "modelfn.example" (an
inference request: a real 8x8 image of an 8 from the data set).
"""
import json
import os

import onnx
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from logreg_onnx import expected_vectors, logreg_to_onnx, write_json

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "functions", "digits", "model.onnx")
EXPECTED = os.path.join(ROOT, "runtime", "testing", "fixtures", "digits-expected.json")
ROW_INDICES = [0, 1, 2]
EXAMPLE_INDEX = 8  # the data set's first 8
DESCRIPTION = ("Handwritten digits: an 8x8 greyscale image (64 values from 0 to 16, row by row) in, "
               "the digit and the probability of each out (scikit-learn logistic regression on its digits data set).")


def document(model, data):
    """Puts the description and a real example image into the model's own metadata."""
    model.doc_string = DESCRIPTION
    pixels = [float(v) for v in data.data[EXAMPLE_INDEX]]
    example = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": pixels}]}
    onnx.helper.set_model_props(model, {"modelfn.example": json.dumps(example, separators=(",", ":"))})
    return model


def main():
    data = load_digits()
    clf = LogisticRegression(multi_class="multinomial", max_iter=10000, random_state=0)
    clf.fit(data.data, data.target)

    os.makedirs(os.path.dirname(MODEL), exist_ok=True)
    onnx.save(document(logreg_to_onnx(clf, "digits_logreg"), data), MODEL)
    write_json(EXPECTED, expected_vectors(clf, data.data[ROW_INDICES]))
    print(f"train accuracy {clf.score(data.data, data.target):.4f}; n_iter {clf.n_iter_}")


if __name__ == "__main__":
    main()
