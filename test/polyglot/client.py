"""A Stratus client in Python, generated from proto/ with the distribution's protoc and
grpc_python_plugin (python.test.ts generates it into a temp dir and runs this with that dir on
PYTHONPATH). It uses only grpcio and protobuf:

  - gRPC reflection and health, with message classes made at run time from the descriptor set
    protoc wrote for third_party/proto (the upstream protocols, which gRPC libraries also ship);
  - a read RPC (ConductorService.ListFlavors) with and without a user's bearer token;
  - a build (CreateServers), watched to ACTIVE through ServerWatchService.WatchServers.

Usage: client.py <api host:port> <conductor host:port> <token> <grpc descriptor set>
Prints one JSON document with what it saw.
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from stratus.compute.v1 import conductor_pb2, conductor_pb2_grpc
from stratus.compute.v1 import server_watch_pb2, server_watch_pb2_grpc
from stratus.events.v1 import events_pb2, subject_pb2

api_address, conductor_address, token, descriptor_set = sys.argv[1:5]
out = {}

# The upstream protocols' messages, from protoc's descriptor set (not generated as a `grpc`
# package, which would shadow grpcio).
files = descriptor_pb2.FileDescriptorSet()
with open(descriptor_set, "rb") as f:
    files.ParseFromString(f.read())
pool = descriptor_pool.DescriptorPool()
for fd in files.file:
    pool.Add(fd)
factory = message_factory.MessageFactory(pool)


def message(name):
    return factory.GetPrototype(pool.FindMessageTypeByName(name))


HealthCheckRequest = message("grpc.health.v1.HealthCheckRequest")
HealthCheckResponse = message("grpc.health.v1.HealthCheckResponse")
ReflectionRequest = message("grpc.reflection.v1.ServerReflectionRequest")
ReflectionResponse = message("grpc.reflection.v1.ServerReflectionResponse")

api = grpc.insecure_channel(api_address)
conductor = grpc.insecure_channel(conductor_address)

# Health, open to anyone.
check = api.unary_unary(
    "/grpc.health.v1.Health/Check",
    request_serializer=HealthCheckRequest.SerializeToString,
    response_deserializer=HealthCheckResponse.FromString,
)
status = check(HealthCheckRequest(service=""), timeout=10).status
out["health"] = HealthCheckResponse.DESCRIPTOR.enum_types_by_name["ServingStatus"].values_by_number[status].name

# Reflection, open to anyone: the services, then the file that declares Health.
reflect = api.stream_stream(
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    request_serializer=ReflectionRequest.SerializeToString,
    response_deserializer=ReflectionResponse.FromString,
)
answers = list(
    reflect(
        iter(
            [
                ReflectionRequest(list_services="*"),
                ReflectionRequest(file_containing_symbol="grpc.health.v1.Health"),
                ReflectionRequest(file_containing_symbol="stratus.compute.v1.ServerWatchService"),
            ]
        ),
        timeout=10,
    )
)
out["services"] = sorted(s.name for s in answers[0].list_services_response.service)
out["health_file"] = [
    descriptor_pb2.FileDescriptorProto.FromString(b).name
    for b in answers[1].file_descriptor_response.file_descriptor_proto
]
out["watch_files"] = sorted(
    descriptor_pb2.FileDescriptorProto.FromString(b).name
    for b in answers[2].file_descriptor_response.file_descriptor_proto
)

# The event subjects, read from the contracts (the stratus.events.v1.subject option).
state_options = events_pb2.ServerStateChanged.DESCRIPTOR.GetOptions()
out["state_subject"] = [s.pattern for s in state_options.Extensions[subject_pb2.subject]]

# A read RPC: refused without a token, answered with one.
credentials = [("authorization", "Bearer " + token)]
flavors = conductor_pb2_grpc.ConductorServiceStub(conductor)
try:
    flavors.ListFlavors(conductor_pb2.ListFlavorsRequest(), timeout=10)
    out["without_token"] = "OK"
except grpc.RpcError as err:
    out["without_token"] = err.code().name
out["flavors"] = [
    f.name for f in flavors.ListFlavors(conductor_pb2.ListFlavorsRequest(), metadata=credentials, timeout=10).flavors
]

# A build, watched to ACTIVE: the watch is in place (its first response) before the create.
watch = server_watch_pb2_grpc.ServerWatchServiceStub(api)
stream = watch.WatchServers(server_watch_pb2.WatchServersRequest(), metadata=credentials, timeout=120)
ready = next(stream)
out["ready_has_change"] = ready.HasField("change")
created = flavors.CreateServers(
    conductor_pb2.CreateServersRequest(
        name="from-python",
        flavor_id="1",
        image_ref="cirros",
        network_mode=conductor_pb2.NETWORK_MODE_NONE,
    ),
    metadata=credentials,
    timeout=30,
)
server_id = created.servers[0].id
out["server_id"] = server_id
steps = []
for r in stream:
    if r.change.server_id != server_id:
        continue
    steps.append({"cursor": r.cursor, "status": r.change.status, "vm_state": r.change.vm_state, "task_state": r.change.task_state})
    if r.change.status in ("ACTIVE", "ERROR"):
        break
stream.cancel()
out["steps"] = steps
print(json.dumps(out))
