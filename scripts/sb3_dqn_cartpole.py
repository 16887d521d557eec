"""Stable-Baselines3 DQN on CartPole-v1 with rl-zoo's tuned hyperparameters, judged as shoal's DQN
is judged: by its own greedy evaluation (10 deterministic episodes every 500 env steps), stopping
when their mean return reaches 475.

rl-zoo (hyperparams/dqn.yml, CartPole-v1): lr 2.3e-3, batch 64, buffer 100k, learning_starts 1000,
gamma 0.99, target_update_interval 10, train_freq 256, gradient_steps 128, exploration_fraction
0.16 of n_timesteps 5e4 (epsilon reaches 0.04 after 8,000 steps), net_arch [256, 256]. The budget
here is --total-steps (100k by default); exploration_fraction is scaled so that epsilon still
reaches its final value after 8,000 steps.

Prints one JSON line: {"seed", "solved", "env_steps", "train_s", "eval_return_mean"}. Run by
scripts/bench-vs-sb3 dqn.
"""

import argparse
import json
import time

from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-steps", type=int, default=100_000)
    p.add_argument("--target", type=float, default=475.0)
    p.add_argument("--eval-every", type=int, default=500)
    a = p.parse_args()
    start = time.perf_counter()
    env = make_vec_env("CartPole-v1", n_envs=1, seed=a.seed)
    # Ten evaluation episodes side by side, as shoal's evaluator runs them.
    eval_env = make_vec_env("CartPole-v1", n_envs=10, seed=a.seed + 10_000)
    model = DQN(
        "MlpPolicy",
        env,
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=8_000 / a.total_steps,
        exploration_final_eps=0.04,
        policy_kwargs=dict(net_arch=[256, 256]),
        seed=a.seed,
        device="cpu",
        verbose=0,
    )
    stop = StopTrainingOnRewardThreshold(reward_threshold=a.target, verbose=0)
    evaluator = EvalCallback(
        eval_env,
        callback_after_eval=stop,
        n_eval_episodes=10,
        eval_freq=a.eval_every,
        deterministic=True,
        verbose=0,
    )
    model.learn(total_timesteps=a.total_steps, callback=evaluator)
    last = float(evaluator.last_mean_reward)
    print(json.dumps({
        "seed": a.seed,
        "solved": last >= a.target,
        "env_steps": int(model.num_timesteps),
        "train_s": time.perf_counter() - start,
        "eval_return_mean": last,
    }))


if __name__ == "__main__":
    main()
