"""PushService over the Connect protocol and gRPC-web, beside the gRPC port.

The Connect project's Python runtime (connectrpc) speaks the protocols, as an
ASGI application served by uvicorn on a port of its own (`connect_port`). Each
call is handed to the same handler chain the gRPC server runs (telemetry, the
live-call gate, auth, the unparsable-request check, `PushServicer`), through a
stand-in for grpc's servicer context (`pushsvc.connect.call`), so auth,
validation, errors and limits cannot drift between the protocols.
"""

from pushsvc.connect.server import ConnectServer

__all__ = ["ConnectServer"]
