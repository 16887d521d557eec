"""Stable-Baselines3 PPO on CartPole-v1 with rl-zoo's tuned hyperparameters, stopped as shoal
stops: when the mean return of the last 100 finished episodes reaches 475.

Prints one JSON line: {"seed", "solved", "env_steps", "train_s"}. Run by scripts/bench-vs-sb3.
"""

import argparse
import json
import time

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env


def linear(initial):
    return lambda progress_remaining: progress_remaining * initial


class StopAtReturn(BaseCallback):
    def __init__(self, target):
        super().__init__()
        self.target = target
        self.solved = False

    def _on_step(self):
        buf = self.model.ep_info_buffer  # the last 100 episodes (stats_window_size=100)
        if len(buf) == 100 and sum(e["r"] for e in buf) / 100 >= self.target:
            self.solved = True
            return False
        return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-steps", type=int, default=150_000)
    p.add_argument("--target", type=float, default=475.0)
    a = p.parse_args()
    start = time.perf_counter()
    # rl-zoo hyperparams/ppo.yml, CartPole-v1 (annealing horizon: --total-steps, as in shoal).
    env = make_vec_env("CartPole-v1", n_envs=8, seed=a.seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
        seed=a.seed,
        device="cpu",
        verbose=0,
    )
    cb = StopAtReturn(a.target)
    model.learn(total_timesteps=a.total_steps, callback=cb)
    print(json.dumps({
        "seed": a.seed,
        "solved": cb.solved,
        "env_steps": int(model.num_timesteps),
        "train_s": time.perf_counter() - start,
    }))


if __name__ == "__main__":
    main()
