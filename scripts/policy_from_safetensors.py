"""Reproduces a shoal policy from its safetensors export (`shoal export`) with numpy alone.

    python scripts/policy_from_safetensors.py POLICY.safetensors < observations.json

Reads a JSON list of raw observations ([[o1, o2, ...], ...]) on stdin and prints, as JSON, one
row per observation: the action probabilities (categorical policies: softmax of the actor's
outputs) or the action means (Gaussian policies). Observations are normalised first when the
run normalised them. Used by tests/tests/observability.rs to check the export to 1e-5.
"""

import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def main():
    path = sys.argv[1]
    tensors = load_file(path)
    with safe_open(path, "np") as f:
        meta = f.metadata()
    obs = np.asarray(json.load(sys.stdin), dtype=np.float64)
    if meta["obs_normalization"] == "on":
        mean = tensors["obs_normalization.mean"]
        var = tensors["obs_normalization.var"]
        clip, eps = float(meta["obs_clip"]), float(meta["obs_epsilon"])
        obs = np.clip((obs - mean) / np.sqrt(var + eps), -clip, clip)
    activation = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}[meta["activation"]]
    layers = len(json.loads(meta["hidden"])) + 1
    x = obs.astype(np.float32)
    for i in range(layers):
        x = x @ tensors[f"actor.layers.{i}.weight"] + tensors[f"actor.layers.{i}.bias"]
        if i < layers - 1:
            x = activation(x)
    if meta["action_distribution"] == "categorical":
        z = x - x.max(axis=1, keepdims=True)
        p = np.exp(z)
        x = p / p.sum(axis=1, keepdims=True)
    print(json.dumps(x.astype(np.float64).tolist()))


if __name__ == "__main__":
    main()
