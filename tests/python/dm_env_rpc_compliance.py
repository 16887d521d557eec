"""Runs the dm_env_rpc compliance suite shipped with the `dm-env-rpc` package (its own test
classes, unchanged) against a running dm_env_rpc server (`shoal env-server`, or the Gymnasium
bridge), by default for a discrete-action vector environment (CartPole-v1), a continuous-action
one (Pendulum-v1) and an image one (Catch-v0).

Usage: SHOAL_ENV_SERVER=HOST:PORT [SHOAL_COMPLIANCE_ENVS=ID,ID] python dm_env_rpc_compliance.py
Exit status 0 when every test passes.
"""

import os

from absl.testing import absltest
import grpc

from dm_env_rpc.v1 import compliance
from dm_env_rpc.v1 import connection as dm_env_rpc_connection
from dm_env_rpc.v1 import dm_env_rpc_pb2
from dm_env_rpc.v1 import tensor_spec_utils
from dm_env_rpc.v1 import tensor_utils
import numpy as np

ADDRESS = os.environ["SHOAL_ENV_SERVER"]


class _Connected:
  """A fresh connection per test; closing it ends the server's conversation."""

  ENV_ID = None

  def setUp(self):
    super().setUp()
    self._channel = grpc.insecure_channel(ADDRESS)
    grpc.channel_ready_future(self._channel).result(timeout=10)
    self._connection = dm_env_rpc_connection.Connection(self._channel)

  def tearDown(self):
    try:
      super().tearDown()
    finally:
      self._connection.close()
      self._channel.close()

  @property
  def connection(self):
    return self._connection

  def world_settings(self):
    """The one required setting (`seed` and `frame_stack` are optional)."""
    return {"env": tensor_utils.pack_tensor(self.ENV_ID)}


class _WithWorld(_Connected):
  """A world created for the test (destroyed with the connection)."""

  def setUp(self):
    super().setUp()
    self._world_name = self._connection.send(
        dm_env_rpc_pb2.CreateWorldRequest(settings=self.world_settings())
    ).world_name

  @property
  def world_name(self):
    return self._world_name


class _Joined(_WithWorld):
  """A created world, joined."""

  def setUp(self):
    super().setUp()
    self._specs = self._connection.send(
        dm_env_rpc_pb2.JoinWorldRequest(world_name=self._world_name)
    ).specs

  @property
  def specs(self):
    return self._specs

  @property
  def required_actions(self):
    """Every step of shoal's worlds needs its action: the lowest one, of the spec's type."""
    actions = {}
    for uid, spec in self._specs.actions.items():
      low = tensor_spec_utils.bounds(spec).min
      shape = [max(d, 1) for d in spec.shape]
      value = np.full(shape, low, dtype=tensor_utils.data_type_to_np_type(spec.dtype))
      actions[uid] = tensor_utils.pack_tensor(value)
    return actions


def _suite_for(env_id, prefix):
  """The five compliance test classes, bound to worlds of `env_id`."""

  class CreateDestroyWorld(_Connected, compliance.CreateDestroyWorld):
    ENV_ID = env_id

    @property
    def required_world_settings(self):
      return self.world_settings()

    @property
    def invalid_world_settings(self):
      # Each is added to the required settings (which win on a shared name).
      return {
          "seed": tensor_utils.pack_tensor("not a number"),
          "frame_stack": tensor_utils.pack_tensor(0),
          "colour": tensor_utils.pack_tensor("red"),
      }

    @property
    def has_multiple_world_support(self):
      return True

  class JoinLeaveWorld(_WithWorld, compliance.JoinLeaveWorld):
    ENV_ID = env_id

    @property
    def invalid_join_settings(self):
      return {"team": tensor_utils.pack_tensor(1)}

  class Step(_Joined, compliance.Step):
    ENV_ID = env_id

  class Reset(_WithWorld, compliance.Reset):
    ENV_ID = env_id

    def join_world(self):
      return self._connection.send(
          dm_env_rpc_pb2.JoinWorldRequest(world_name=self._world_name)
      ).specs

  class ResetWorld(_WithWorld, compliance.ResetWorld):
    ENV_ID = env_id

  classes = {
      "CreateDestroyWorld": CreateDestroyWorld,
      "JoinLeaveWorld": JoinLeaveWorld,
      "Step": Step,
      "Reset": Reset,
      "ResetWorld": ResetWorld,
  }
  return {f"{prefix}{name}": cls for name, cls in classes.items()}


# The environments to test (SHOAL_COMPLIANCE_ENVS, comma-separated ids; default: a discrete
# vector, a continuous and an image environment of shoal's).
_ENV_IDS = os.environ.get("SHOAL_COMPLIANCE_ENVS",
                          "CartPole-v1,Pendulum-v1,Catch-v0").split(",")

for _env_id, _prefix in [(i, i.split("-")[0].replace("/", "")) for i in _ENV_IDS]:
  for _name, _cls in _suite_for(_env_id, _prefix).items():
    _cls.__name__ = _name
    _cls.__qualname__ = _name
    globals()[_name] = _cls

del _cls  # absltest collects every TestCase left at module level.

if __name__ == "__main__":
  absltest.main()
