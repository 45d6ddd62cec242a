"""Train a LogisticRegression on sklearn's iris data and export it to ONNX by hand.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/iris.py
Writes functions/iris/{model.onnx, expected.json, weights.json}.
"""
import os

import onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from logreg_onnx import expected_vectors, logreg_to_onnx, write_json

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "functions", "iris")
# Two rows per class: setosa (0, 25), versicolor (50, 75), virginica (100, 125).
ROW_INDICES = [0, 25, 50, 75, 100, 125]


def main():
    data = load_iris()
    clf = LogisticRegression(multi_class="multinomial", max_iter=1000, random_state=0)
    clf.fit(data.data, data.target)

    os.makedirs(OUT, exist_ok=True)
    onnx.save(logreg_to_onnx(clf, "iris_logreg"), os.path.join(OUT, "model.onnx"))

    labels = [str(n) for n in data.target_names]
    write_json(
        os.path.join(OUT, "expected.json"),
        {"labels": labels, **expected_vectors(clf, data.data[ROW_INDICES])},
    )
    write_json(
        os.path.join(OUT, "weights.json"),
        {
            "coef": clf.coef_.tolist(),
            "intercept": clf.intercept_.tolist(),
            "classes": [int(c) for c in clf.classes_],
        },
    )
    print(f"train accuracy {clf.score(data.data, data.target):.4f}; wrote {OUT}")


if __name__ == "__main__":
    main()
