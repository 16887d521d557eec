"""Reference trajectories from Gymnasium for shoal's environment tests.

For each classic-control environment: a few episodes from Gymnasium's own seeded resets, with
seeded random actions, until termination or the time limit. Each episode records the internal
state right after reset (as Gymnasium holds it), the actions, and every observation, reward and
termination/truncation flag. shoal starts from the same internal state, replays the actions and
must produce the same numbers (tests/tests/gymnasium_fixtures.rs).

    python scripts/gen_gymnasium_fixtures.py   # needs `pip install gymnasium` (any venv)

Writes tests/fixtures/gymnasium/<env id>.json. Floats are written with repr(), which round-trips
exactly.
"""

import json
import os
import sys

import gymnasium as gym
import numpy as np

ENVS = {
    "CartPole-v1": 3,
    "MountainCar-v0": 2,
    "Pendulum-v1": 2,
    "Acrobot-v1": 2,
    "MountainCarContinuous-v0": 2,
}

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "gymnasium")


def episode(env, seed):
    rng = np.random.default_rng(seed + 1000)
    obs, _ = env.reset(seed=seed)
    state = [float(x) for x in np.asarray(env.unwrapped.state, dtype=np.float64)]
    rec = {
        "seed": seed,
        "state_dtype": str(np.asarray(env.unwrapped.state).dtype),
        "initial_state": state,
        "initial_obs": [float(x) for x in obs],
        "actions": [], "obs": [], "rewards": [], "terminated": [], "truncated": [],
    }
    space = env.action_space
    while True:
        if isinstance(space, gym.spaces.Discrete):
            action = int(rng.integers(space.n))
            rec["actions"].append([float(action)])
        else:
            # Beyond the bounds now and then, to check clipping.
            action = rng.uniform(1.5 * space.low, 1.5 * space.high).astype(np.float32)
            rec["actions"].append([float(a) for a in action])
        obs, reward, terminated, truncated, _ = env.step(action)
        rec["obs"].append([float(x) for x in obs])
        rec["rewards"].append(float(reward))
        rec["terminated"].append(bool(terminated))
        rec["truncated"].append(bool(truncated))
        if terminated or truncated:
            return rec


def main():
    os.makedirs(OUT, exist_ok=True)
    for env_id, episodes in ENVS.items():
        env = gym.make(env_id)
        data = {
            "env_id": env_id,
            "gymnasium": gym.__version__,
            "numpy": np.__version__,
            "episodes": [episode(env, seed) for seed in range(episodes)],
        }
        path = os.path.join(OUT, f"{env_id}.json")
        with open(path, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        steps = sum(len(e["actions"]) for e in data["episodes"])
        print(f"{env_id}: {episodes} episodes, {steps} steps -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
