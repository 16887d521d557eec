"""Serves any Gymnasium environment over dm_env_rpc v1: shoal's Gymnasium bridge.

Run it beside shoal (or any dm_env_rpc client) and point a run at it:

    python bridge/gymnasium_server.py --listen 127.0.0.1:50053
    # run config:  env_id = "dm_env_rpc://127.0.0.1:50053?env=CartPole-v1"

It prints the address it listens on as its first line. Each world is one Gymnasium environment
with one agent; a client creates it with the settings

    env           the Gymnasium id (required), e.g. "CartPole-v1", "ALE/Breakout-v5"
    seed          integer: the first reset is reset(seed=seed), later ones continue its stream
    atari         true: the standard Atari preprocessing (Gymnasium's AtariPreprocessing:
                  up to 30 no-op actions at reset, frame skip 4 with the max over the last two
                  frames, grayscale, 84x84, episode end on game over) and a stack of the last
                  `frame_stack` frames (FrameStackObservation), so observations are uint8
                  [frame_stack, 84, 84]; the environment is made with frameskip=1
    frame_stack   frames stacked with `atari` (default 4)

and then joins it and steps it. What crosses the process boundary per step: the action (an
INT32 scalar for a Discrete space, FLOAT for a Box), the observation (`observation`: FLOAT for a
float Box, UINT8 for pixels, [C, H, W]: channels-last images are transposed) and the `reward`
(DOUBLE). `terminated` is the TERMINATED state, `truncated` INTERRUPTED.

The environment code (and, for Atari, the ALE) runs in this process only; shoal never links
it. Dependencies come from PyPI: bridge/requirements.txt (Atari: bridge/requirements-atari.txt).
"""

import argparse
import asyncio
import itertools
import sys

import grpc
import gymnasium as gym
import numpy as np
from dm_env_rpc.v1 import dm_env_rpc_pb2 as pb
from dm_env_rpc.v1 import dm_env_rpc_pb2_grpc
from dm_env_rpc.v1 import tensor_spec_utils
from dm_env_rpc.v1 import tensor_utils
from google.rpc import code_pb2
from google.rpc import status_pb2

ACTION_UID = 1
OBSERVATION_UID = 1
REWARD_UID = 2
MAX_WORLDS = 1024
MAX_CONVERSATIONS = 256
MAX_FRAME_STACK = 64


class Refused(Exception):
  """A request that fails: answered with this status, the conversation goes on."""

  def __init__(self, code, message):
    super().__init__(message)
    self.code = code


def _setting(settings, name, kind, default=None):
  if name not in settings:
    return default
  if list(settings[name].shape):
    # Checked before unpacking: a one-element tensor with a large shape would be broadcast.
    raise Refused(code_pb2.INVALID_ARGUMENT, f"setting `{name}` must be a scalar")
  try:
    value = tensor_utils.unpack_tensor(settings[name])
  except Exception as e:  # pylint: disable=broad-except
    raise Refused(code_pb2.INVALID_ARGUMENT, f"setting `{name}`: {e}") from e
  value = np.asarray(value)
  if value.shape != ():
    raise Refused(code_pb2.INVALID_ARGUMENT, f"setting `{name}` must be a scalar")
  value = value.item()
  if kind is int and isinstance(value, bool) or not isinstance(value, kind):
    raise Refused(code_pb2.INVALID_ARGUMENT,
                  f"setting `{name}` must be {kind.__name__}, not {value!r}")
  return value


def _make(settings):
  known = {"env", "seed", "atari", "frame_stack"}
  unknown = sorted(set(settings) - known)
  if unknown:
    raise Refused(code_pb2.INVALID_ARGUMENT,
                  f"unknown settings {unknown}; the bridge takes {sorted(known)}")
  env_id = _setting(settings, "env", str)
  if env_id is None:
    raise Refused(code_pb2.INVALID_ARGUMENT, "setting `env` (a Gymnasium id) is required")
  seed = _setting(settings, "seed", int, 0) % 2**63
  atari = _setting(settings, "atari", bool, False)
  frame_stack = _setting(settings, "frame_stack", int, 4)
  if not 1 <= frame_stack <= MAX_FRAME_STACK:
    raise Refused(code_pb2.INVALID_ARGUMENT,
                  f"setting `frame_stack` must be in 1..={MAX_FRAME_STACK}")
  try:
    if atari:
      import ale_py  # pylint: disable=g-import-not-at-top
      gym.register_envs(ale_py)
      env = gym.make(env_id, frameskip=1)
      env = gym.wrappers.AtariPreprocessing(
          env, noop_max=30, frame_skip=4, screen_size=84,
          terminal_on_life_loss=False, grayscale_obs=True)
      env = gym.wrappers.FrameStackObservation(env, frame_stack)
    else:
      env = gym.make(env_id)
  except Refused:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise Refused(code_pb2.INVALID_ARGUMENT, f"cannot make `{env_id}`: {e}") from e
  return env, seed


def _bounded_spec(name, dtype, shape, low, high):
  spec = pb.TensorSpec(name=name, dtype=dtype, shape=list(shape))
  low, high = np.asarray(low), np.asarray(high)
  squeeze = lambda a: a.flat[0] if a.size and np.all(a == a.flat[0]) else a
  tensor_spec_utils.set_bounds(spec, squeeze(low), squeeze(high))
  return spec


class World:
  """One Gymnasium environment and its agent's episode state."""

  def __init__(self, settings):
    self.env, self.seed = _make(settings)
    try:
      self._describe()
    except Exception:
      self.env.close()
      raise

  def _describe(self):
    self.first_reset = True
    self.state = pb.EnvironmentStateType.INTERRUPTED
    # A ResetWorld cut the agent's episode: its next step reports INTERRUPTED first.
    self.cut = False
    self.joined = False
    self.obs = None
    self.reward = 0.0
    action_space = self.env.action_space
    obs_space = self.env.observation_space
    if isinstance(action_space, gym.spaces.Discrete):
      start, n = int(action_space.start), int(action_space.n)
      self.action_spec = _bounded_spec("action", pb.DataType.INT32, [], start,
                                       start + n - 1)
    elif isinstance(action_space, gym.spaces.Box):
      self.action_spec = _bounded_spec("action", pb.DataType.FLOAT,
                                       action_space.shape, action_space.low,
                                       action_space.high)
    else:
      raise Refused(code_pb2.INVALID_ARGUMENT,
                    f"action space {action_space} is not served")
    if not isinstance(obs_space, gym.spaces.Box):
      raise Refused(code_pb2.INVALID_ARGUMENT,
                    f"observation space {obs_space} is not served")
    # Channels-last images (Gymnasium's convention) go out channels-first.
    self.transpose = (obs_space.dtype == np.uint8 and len(obs_space.shape) == 3
                      and obs_space.shape[-1] <= 4 < obs_space.shape[0])
    shape = obs_space.shape
    low, high = obs_space.low, obs_space.high
    if self.transpose:
      shape = (shape[2], shape[0], shape[1])
      low, high = np.transpose(low, (2, 0, 1)), np.transpose(high, (2, 0, 1))
    if obs_space.dtype == np.uint8:
      self.obs_dtype = np.uint8
      self.obs_spec = _bounded_spec("observation", pb.DataType.UINT8, shape, low, high)
    else:
      self.obs_dtype = np.float32
      self.obs_spec = _bounded_spec("observation", pb.DataType.FLOAT, shape,
                                    low.astype(np.float32), high.astype(np.float32))
    self.specs = pb.ActionObservationSpecs(
        actions={ACTION_UID: self.action_spec},
        observations={
            OBSERVATION_UID: self.obs_spec,
            REWARD_UID: pb.TensorSpec(name="reward", dtype=pb.DataType.DOUBLE),
        })

  def action(self, actions):
    unknown = [uid for uid in actions if uid != ACTION_UID]
    if unknown:
      raise Refused(code_pb2.INVALID_ARGUMENT, f"no action has UID {unknown[0]}")
    if ACTION_UID not in actions:
      raise Refused(code_pb2.INVALID_ARGUMENT,
                    f"every step needs the action (UID {ACTION_UID})")
    tensor = actions[ACTION_UID]
    want = tensor_utils.data_type_to_np_type(self.action_spec.dtype)
    shape, spec_shape = list(tensor.shape), list(self.action_spec.shape)
    # Checked before unpacking (a one-element tensor with a large shape would be broadcast):
    # the spec's shape, where at most one dimension may be -1 (inferred from the payload).
    if shape and (len(shape) != len(spec_shape) or sum(d < 0 for d in shape) > 1 or
                  any(d >= 0 and d != want for d, want in zip(shape, spec_shape))):
      raise Refused(code_pb2.INVALID_ARGUMENT,
                    f"action shape {shape}; the spec's is {spec_shape}")
    try:
      if tensor_utils.get_tensor_type(tensor) != want:
        raise Refused(code_pb2.INVALID_ARGUMENT,
                      f"the action must be {pb.DataType.Name(self.action_spec.dtype)}")
      value = np.asarray(tensor_utils.unpack_tensor(tensor))
      value = np.broadcast_to(value, tuple(self.action_spec.shape)).astype(want)
    except Refused:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise Refused(code_pb2.INVALID_ARGUMENT, f"action: {e}") from e
    bounds = tensor_spec_utils.bounds(self.action_spec)
    if np.any(~(value >= bounds.min)) or np.any(~(value <= bounds.max)):
      raise Refused(code_pb2.INVALID_ARGUMENT,
                    f"action {value.tolist()} is outside [{bounds.min}, {bounds.max}]")
    return int(value) if value.shape == () and want != np.float32 else value

  def observe(self, obs):
    obs = np.asarray(obs, dtype=self.obs_dtype)
    self.obs = np.transpose(obs, (2, 0, 1)) if self.transpose else obs

  def step(self, request):
    requested = list(request.requested_observations)
    for uid in requested:
      if uid not in (OBSERVATION_UID, REWARD_UID):
        raise Refused(code_pb2.INVALID_ARGUMENT, f"no observation has UID {uid}")
    if self.cut:
      self.cut = False
      self.state = pb.EnvironmentStateType.INTERRUPTED
      self.reward = 0.0
    elif self.state == pb.EnvironmentStateType.RUNNING:
      action = self.action(request.actions)
      obs, reward, terminated, truncated, _ = self.env.step(action)
      self.observe(obs)
      self.reward = float(reward)
      self.state = (pb.EnvironmentStateType.TERMINATED if terminated else
                    pb.EnvironmentStateType.INTERRUPTED if truncated else
                    pb.EnvironmentStateType.RUNNING)
    else:
      # From a non-running state the actions are ignored and the next episode starts.
      obs, _ = self.env.reset(seed=self.seed if self.first_reset else None)
      self.first_reset = False
      self.observe(obs)
      self.reward = 0.0
      self.state = pb.EnvironmentStateType.RUNNING
    observations = {}
    for uid in requested:
      observations[uid] = (tensor_utils.pack_tensor(self.obs) if uid == OBSERVATION_UID
                           else tensor_utils.pack_tensor(self.reward, dtype=np.float64))
    return pb.StepResponse(state=self.state, observations=observations)


class Conversation:
  """One client's stream: the world it joined and the worlds it created."""

  def __init__(self, worlds):
    self.worlds = worlds
    self.joined = None
    self.created = []
    self.ids = itertools.count(1)

  def handle(self, request):
    kind = request.WhichOneof("payload")
    try:
      if kind == "create_world":
        return pb.EnvironmentResponse(create_world=self.create(request.create_world))
      if kind == "join_world":
        return pb.EnvironmentResponse(join_world=self.join(request.join_world))
      if kind == "step":
        if self.joined is None:
          raise Refused(code_pb2.FAILED_PRECONDITION, "join a world first")
        return pb.EnvironmentResponse(step=self.joined.step(request.step))
      if kind == "reset":
        if self.joined is None:
          raise Refused(code_pb2.FAILED_PRECONDITION, "join a world first")
        if request.reset.settings:
          raise Refused(code_pb2.INVALID_ARGUMENT, "Reset takes no settings")
        if self.joined.state == pb.EnvironmentStateType.RUNNING:
          self.joined.state = pb.EnvironmentStateType.INTERRUPTED
        self.joined.cut = False
        return pb.EnvironmentResponse(reset=pb.ResetResponse(specs=self.joined.specs))
      if kind == "reset_world":
        world = self.world(request.reset_world.world_name)
        if request.reset_world.settings:
          raise Refused(code_pb2.INVALID_ARGUMENT, "ResetWorld takes no settings")
        if world.state == pb.EnvironmentStateType.RUNNING:
          world.cut = True
        return pb.EnvironmentResponse(reset_world=pb.ResetWorldResponse())
      if kind == "leave_world":
        self.leave()
        return pb.EnvironmentResponse(leave_world=pb.LeaveWorldResponse())
      if kind == "destroy_world":
        self.destroy(request.destroy_world.world_name)
        return pb.EnvironmentResponse(destroy_world=pb.DestroyWorldResponse())
      raise Refused(code_pb2.UNIMPLEMENTED, f"request `{kind}` is not served")
    except Refused as r:
      return pb.EnvironmentResponse(
          error=status_pb2.Status(code=r.code, message=str(r)[:400]))
    except Exception as e:  # pylint: disable=broad-except
      # The environment itself failed (a Gymnasium error): the client hears why, the stream
      # and the other worlds go on.
      return pb.EnvironmentResponse(error=status_pb2.Status(
          code=code_pb2.INTERNAL, message=f"{type(e).__name__}: {e}"[:400]))

  def create(self, request):
    if len(self.worlds) >= MAX_WORLDS:
      raise Refused(code_pb2.RESOURCE_EXHAUSTED, f"the bridge holds {MAX_WORLDS} worlds")
    world = World(request.settings)
    name = f"world-{id(self)}-{next(self.ids)}"
    self.worlds[name] = world
    self.created.append(name)
    return pb.CreateWorldResponse(world_name=name)

  def world(self, name):
    if name not in self.worlds:
      raise Refused(code_pb2.NOT_FOUND, f"no world is named `{name[:64]}`")
    return self.worlds[name]

  def join(self, request):
    if self.joined is not None:
      raise Refused(code_pb2.FAILED_PRECONDITION, "already joined to a world")
    if request.settings:
      raise Refused(code_pb2.INVALID_ARGUMENT, "JoinWorld takes no settings")
    world = self.world(request.world_name)
    if world.joined:
      raise Refused(code_pb2.FAILED_PRECONDITION, "the world already has its agent")
    world.joined = True
    world.state = pb.EnvironmentStateType.INTERRUPTED
    world.cut = False
    self.joined = world
    return pb.JoinWorldResponse(specs=world.specs)

  def leave(self):
    if self.joined is not None:
      self.joined.joined = False
      self.joined = None

  def destroy(self, name):
    world = self.world(name)
    if world.joined:
      raise Refused(code_pb2.FAILED_PRECONDITION, "the world has an agent; leave first")
    world.env.close()
    del self.worlds[name]
    if name in self.created:
      self.created.remove(name)

  def close(self):
    self.leave()
    for name in list(self.created):
      world = self.worlds.pop(name, None)
      if world is not None:
        world.env.close()
    self.created.clear()


class Environment(dm_env_rpc_pb2_grpc.EnvironmentServicer):
  """The dm_env_rpc service: one conversation per stream, requests answered in order."""

  def __init__(self):
    self.worlds = {}

  async def Process(self, request_iterator, context):  # pylint: disable=invalid-name
    conversation = Conversation(self.worlds)
    try:
      async for request in request_iterator:
        yield conversation.handle(request)
    finally:
      conversation.close()


async def serve(listen):
  server = grpc.aio.server(
      options=[("grpc.max_receive_message_length", 4 * 1024 * 1024),
               ("grpc.max_send_message_length", 256 * 1024 * 1024)],
      maximum_concurrent_rpcs=MAX_CONVERSATIONS)
  dm_env_rpc_pb2_grpc.add_EnvironmentServicer_to_server(Environment(), server)
  port = server.add_insecure_port(listen)
  if port == 0:
    sys.exit(f"cannot listen on {listen}")
  await server.start()
  host = listen.rsplit(":", 1)[0]
  print(f"dm_env_rpc Gymnasium bridge listening on {host}:{port}", flush=True)
  await server.wait_for_termination()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--listen", default="127.0.0.1:50053",
                      help="HOST:PORT to listen on (port 0: any free port)")
  args = parser.parse_args()
  try:
    asyncio.run(serve(args.listen))
  except KeyboardInterrupt:
    pass


if __name__ == "__main__":
  main()
