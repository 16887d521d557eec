"""PyTorch's PPO minibatch step on one CPU thread, for the cases of tests/benches/learner_step.rs.

The same networks (separate actor and critic MLPs with tanh; the Nature CNN and a pre-norm causal
transformer shared by linear heads), the same loss (clipped surrogate + 0.5 * value MSE - 0.01 *
entropy), global-norm clipping at 0.5 and Adam (eps 1e-5). Prints one JSON object:
{"torch": version, "cases": {name: ms per step}}. Run by scripts/bench-vs-torch.
"""
import json
import math
import sys
import time

import torch
from torch import nn

torch.set_num_threads(1)
torch.manual_seed(1)


def mlp(sizes, last_gain=1.0):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MlpPolicy(nn.Module):
    def __init__(self, obs, hidden, actions):
        super().__init__()
        self.actor = mlp([obs, *hidden, actions])
        self.critic = mlp([obs, *hidden, 1])

    def forward(self, x):
        return self.actor(x), self.critic(x).squeeze(-1)


class NatureCnn(nn.Module):
    def __init__(self, actions):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(4, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU())
        self.actor = nn.Linear(512, actions)
        self.critic = nn.Linear(512, 1)

    def forward(self, x):
        f = self.encoder(x.float() / 255.0)
        return self.actor(f), self.critic(f).squeeze(-1)


class SmallCnn(nn.Module):
    def __init__(self, channels, size, actions):
        super().__init__()
        flat = 16 * (size - 2) * (size - 2)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 16, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(flat, 128), nn.ReLU())
        self.actor = nn.Linear(128, actions)
        self.critic = nn.Linear(128, 1)

    def forward(self, x):
        f = self.encoder(x.float() / 255.0)
        return self.actor(f), self.critic(f).squeeze(-1)


class Transformer(nn.Module):
    def __init__(self, length, vocab, width, depth, heads, ff, actions):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.zeros(length, width))
        layer = nn.TransformerEncoderLayer(width, heads, ff, dropout=0.0, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.actor = nn.Linear(width, actions)
        self.critic = nn.Linear(width, 1)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length))

    def forward(self, x):
        ids, lengths = x[:, :-1].long(), x[:, -1].long()
        h = self.layers(self.embed(ids) + self.pos, mask=self.mask, is_causal=True)
        h = self.norm(h)
        last = h[torch.arange(h.shape[0]), (lengths - 1).clamp(min=0)]
        return self.actor(last), self.critic(last).squeeze(-1)


def case(name):
    if name.startswith("cartpole_mlp"):
        rows = 64 if name.endswith("b64") else 256
        return MlpPolicy(4, [64, 64], 2), torch.randn(rows, 4), 2
    if name == "mlp_256x256_b256":
        return MlpPolicy(64, [256, 256], 6), torch.randn(256, 64), 6
    if name == "small_cnn_b256":
        return SmallCnn(4, 10, 6), torch.randint(0, 256, (256, 4, 10, 10), dtype=torch.uint8), 6
    if name.startswith("nature_cnn"):
        rows = 32 if name.endswith("b32") else 256
        return NatureCnn(6), torch.randint(0, 256, (rows, 4, 84, 84), dtype=torch.uint8), 6
    if name == "transformer_w64_b256":
        obs = torch.cat([torch.randint(0, 40, (256, 16)), torch.full((256, 1), 16)], dim=1)
        return Transformer(16, 40, 64, 2, 4, 128, 40), obs, 40
    if name == "transformer_w256_b64":
        obs = torch.cat([torch.randint(0, 40, (64, 64)), torch.full((64, 1), 64)], dim=1)
        return Transformer(64, 40, 256, 4, 8, 1024, 40), obs, 40
    raise SystemExit(f"unknown case {name}")


def step_ms(name, budget_s=2.0):
    model, obs, n = case(name)
    rows = obs.shape[0]
    actions = torch.randint(0, n, (rows,))
    old = -math.log(n) + 0.1 * torch.randn(rows)
    adv, ret = torch.randn(rows), torch.randn(rows)
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-4, eps=1e-5)

    def step():
        logits, values = model(obs)
        logp_all = torch.log_softmax(logits, dim=-1)
        logp = logp_all.gather(1, actions[:, None]).squeeze(1)
        entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
        ratio = (logp - old).exp()
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = torch.max(-a * ratio, -a * ratio.clamp(0.8, 1.2)).mean()
        loss = pg + 0.5 * ((values - ret) ** 2).mean() - 0.01 * entropy
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()

    step()
    t, steps = time.perf_counter(), 0
    while steps < 3 or time.perf_counter() - t < budget_s:
        step()
        steps += 1
    return (time.perf_counter() - t) / steps * 1e3


if __name__ == "__main__":
    names = sys.argv[1:]
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "cases": {name: step_ms(name) for name in names}}))
