"""Train a LogisticRegression on sklearn's 8x8 digits data and export it to ONNX by hand.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/digits.py
Writes functions/digits/model.onnx (the only file in that folder: it is the
zero-code example) and runtime/testing/fixtures/digits-expected.json.
"""
import os

import onnx
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from logreg_onnx import expected_vectors, logreg_to_onnx, write_json

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "functions", "digits", "model.onnx")
EXPECTED = os.path.join(ROOT, "runtime", "testing", "fixtures", "digits-expected.json")
ROW_INDICES = [0, 1, 2]


def main():
    data = load_digits()
    clf = LogisticRegression(multi_class="multinomial", max_iter=10000, random_state=0)
    clf.fit(data.data, data.target)

    os.makedirs(os.path.dirname(MODEL), exist_ok=True)
    onnx.save(logreg_to_onnx(clf, "digits_logreg"), MODEL)
    write_json(EXPECTED, expected_vectors(clf, data.data[ROW_INDICES]))
    print(f"train accuracy {clf.score(data.data, data.target):.4f}; n_iter {clf.n_iter_}")


if __name__ == "__main__":
    main()
