"""The classic stack the project grew from: a Flask app predicting with scikit-learn.

Served by gunicorn (workers = cores) behind nginx for `npm run bench`. Both models use the very
weights modelfn serves, read from the ONNX files' initializers:

  POST /iris/predict  {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}  -> LogisticRegression
  POST /mlp/predict   {"instances": [[784 floats], ...]}          -> MLPClassifier (784-1024-1024-10)

Answers {"predictions": [[probabilities...], ...]}.
"""
import os

import numpy as np
import onnx
from flask import Flask, jsonify, request
from onnx import numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def initializers(path):
    model = onnx.load(path)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def iris_model():
    weights = initializers(os.environ.get("IRIS_MODEL", os.path.join(ROOT, "functions", "iris", "model.onnx")))
    w = next(v for v in weights.values() if v.ndim == 2)
    b = next(v for v in weights.values() if v.ndim == 1)
    # Multinomial: the default for several classes (and the only choice in newer scikit-learn).
    clf = LogisticRegression()
    # The ONNX Gemm multiplies by W transposed: W has one row per class, as coef_ does.
    clf.coef_ = w.astype(np.float64)
    clf.intercept_ = b.astype(np.float64)
    clf.classes_ = np.arange(w.shape[0])
    return clf


def mlp_model():
    weights = initializers(os.environ.get("MLP_MODEL", os.path.join(ROOT, "bench", "models", "mlp.onnx")))
    layers = sorted(k for k in weights if k.startswith("W"))
    clf = MLPClassifier(hidden_layer_sizes=(1024, 1024), activation="relu")
    clf.coefs_ = [weights[k] for k in layers]
    clf.intercepts_ = [weights["b" + k[1:]] for k in layers]
    clf.n_layers_ = len(layers) + 1
    clf.n_outputs_ = clf.coefs_[-1].shape[1]
    clf.out_activation_ = "softmax"
    clf.classes_ = np.arange(clf.n_outputs_)
    return clf


MODELS = {"iris": iris_model(), "mlp": mlp_model()}
app = Flask(__name__)


@app.post("/<name>/predict")
def predict(name):
    model = MODELS.get(name)
    if model is None:
        return jsonify(error=f"unknown model {name}"), 404
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "instances" not in body:
        return jsonify(error='expected {"instances": [...]}'), 400
    x = np.asarray(body["instances"], dtype=np.float32)
    return jsonify(predictions=model.predict_proba(x).tolist())
