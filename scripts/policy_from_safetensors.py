"""Reproduces a shoal policy from its safetensors export (`shoal export`) with numpy alone.

    python scripts/policy_from_safetensors.py POLICY.safetensors < observations.json

Reads a JSON list of raw observations ([[o1, o2, ...], ...]; image observations flat in
[C, H, W] order, pixel values 0..=255) on stdin and prints, as JSON, one row per observation:
the action probabilities (categorical policies: softmax of the actor's outputs; for a DQN, of
its Q-values) or the action means (Gaussian policies). Observations are normalised first when
the run normalised them; images are divided by 255 and, with a convolutional encoder
(`nature_cnn`, `small_cnn`), go through its convolutions (no padding, ReLU after each) and its
dense layer (ReLU) before the actor's layers. Used by tests/tests/observability.rs (MLP) and
tests/tests/pixels.rs (small CNN) to check the export to 1e-5.
"""

import json
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from safetensors import safe_open
from safetensors.numpy import load_file

def relu(x):
    return np.maximum(x, 0.0)


def conv2d(x, weight, bias, stride):
    """x [N, C, H, W], weight [O, C, k, k] -> [N, O, H', W'], no padding."""
    k = weight.shape[-1]
    windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", windows, weight) + bias[None, :, None, None]


def encode(x, tensors, meta):
    """The encoder's features: the observation itself for an MLP, else the CNN's dense layer."""
    if meta.get("encoder", "mlp") == "mlp":
        return x
    c, h, w = json.loads(meta["image_shape"])
    x = x.reshape(-1, c, h, w)
    # Kernel sizes are in the weights' shapes, strides in the metadata.
    for i, stride in enumerate(json.loads(meta["conv_strides"])):
        conv = f"encoder.Conv.convs.{i}"
        x = relu(conv2d(x, tensors[f"{conv}.weight"], tensors[f"{conv}.bias"], stride))
    x = x.reshape(x.shape[0], -1)
    return relu(x @ tensors["encoder.Conv.fc.weight"] + tensors["encoder.Conv.fc.bias"])


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
    if meta.get("image_shape"):
        obs = obs / 255.0
    activation = {"tanh": np.tanh, "relu": relu}[meta["activation"]]
    x = encode(obs.astype(np.float32), tensors, meta)
    layers = sum(1 for name in tensors if name.startswith("actor.") and name.endswith(".weight"))
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
