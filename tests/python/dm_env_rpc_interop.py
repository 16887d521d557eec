"""Wire compatibility of shoal's dm_env_rpc with the `dm-env-rpc` package's own code.

  descriptors FILE
      FILE is shoal's compiled FileDescriptorSet. Compares every message, field, oneof, enum
      and service of `dm_env_rpc.v1` (names, numbers, types, labels) with the package's
      generated `dm_env_rpc_pb2`; prints a summary, exits 1 listing every difference.

  adaptor HOST:PORT ENV_ID SEED
      Creates and joins a world of ENV_ID on a `shoal env-server` through the package's
      `dm_env_adaptor` (its client, as any dm_env user would use it), then plays the actions
      read as a JSON list from stdin: `reset()` first, then one `step()` per action (a step
      after an episode's last one starts the next episode, as dm_env does). Prints one JSON
      object per time step: step type, reward, discount and observation (numbers as text).
"""

import json
import sys

from google.protobuf import descriptor_pb2


def _fields(message, prefix, out):
  """Flattens `message` (a DescriptorProto) into comparable entries under `prefix`."""
  name = f"{prefix}.{message.name}"
  out[name] = "message"
  for f in message.field:
    oneof = (message.oneof_decl[f.oneof_index].name
             if f.HasField("oneof_index") else None)
    out[f"{name}.{f.name}"] = (f.number, f.type, f.label, f.type_name, oneof)
  for e in message.enum_type:
    _enum(e, name, out)
  for nested in message.nested_type:
    _fields(nested, name, out)


def _enum(enum, prefix, out):
  for v in enum.value:
    out[f"{prefix}.{enum.name}.{v.name}"] = v.number


def _flatten(file_proto):
  out = {}
  prefix = "." + file_proto.package
  for m in file_proto.message_type:
    _fields(m, prefix, out)
  for e in file_proto.enum_type:
    _enum(e, prefix, out)
  for s in file_proto.service:
    for m in s.method:
      out[f"{prefix}.{s.name}.{m.name}"] = (m.input_type, m.output_type,
                                            m.client_streaming,
                                            m.server_streaming)
  return out


def descriptors(path):
  from dm_env_rpc.v1 import dm_env_rpc_pb2  # pylint: disable=g-import-not-at-top
  theirs_proto = descriptor_pb2.FileDescriptorProto()
  dm_env_rpc_pb2.DESCRIPTOR.CopyToProto(theirs_proto)
  with open(path, "rb") as f:
    fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
  ours_proto = next(
      fp for fp in fds.file if fp.package == "dm_env_rpc.v1")
  ours, theirs = _flatten(ours_proto), _flatten(theirs_proto)
  differences = []
  for key in sorted(set(ours) | set(theirs)):
    if ours.get(key) != theirs.get(key):
      differences.append(f"{key}: shoal {ours.get(key)!r}, dm-env-rpc "
                         f"{theirs.get(key)!r}")
  if differences:
    print("\n".join(differences))
    sys.exit(1)
  fields = sum(1 for v in ours.values() if isinstance(v, tuple))
  print(json.dumps({
      "entries": len(ours),
      "fields_and_methods": fields,
      "package": ours_proto.package,
  }))


def adaptor(address, env_id, seed):
  import grpc  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from dm_env_rpc.v1 import connection as dm_env_rpc_connection  # pylint: disable=g-import-not-at-top
  from dm_env_rpc.v1 import dm_env_adaptor  # pylint: disable=g-import-not-at-top

  actions = json.load(sys.stdin)
  channel = grpc.insecure_channel(address)
  grpc.channel_ready_future(channel).result(timeout=10)
  connection = dm_env_rpc_connection.Connection(channel)
  env, world = dm_env_adaptor.create_and_join_world(
      connection,
      create_world_settings={"env": env_id, "seed": np.int64(seed)},
      join_world_settings={})
  spec = env.action_spec()["action"]

  def record(ts):
    obs = np.asarray(ts.observation["observation"])
    # Numbers as Python's shortest round-trip text, which Rust's `str::parse` reads back
    # exactly (JSON number parsers need not).
    text = lambda x: None if x is None else repr(float(x))
    print(json.dumps({
        "step_type": int(ts.step_type),
        "reward": text(ts.reward),
        "discount": text(ts.discount),
        "observation": [text(x) for x in obs.ravel()],
        "dtype": str(obs.dtype),
        "shape": list(obs.shape),
    }))

  record(env.reset())
  for a in actions:
    action = (np.asarray(a, dtype=spec.dtype) if isinstance(a, list) else
              spec.dtype.type(a))
    record(env.step({"action": action}))
  env.close()
  connection.send(
      __import__("dm_env_rpc.v1.dm_env_rpc_pb2", fromlist=["x"])
      .DestroyWorldRequest(world_name=world))
  connection.close()
  channel.close()


if __name__ == "__main__":
  if sys.argv[1:2] == ["descriptors"]:
    descriptors(sys.argv[2])
  elif sys.argv[1:2] == ["adaptor"]:
    adaptor(sys.argv[2], sys.argv[3], int(sys.argv[4]))
  else:
    sys.exit(__doc__)
