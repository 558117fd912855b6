"""gRPC entrypoint: servicers, conversion, status mapping, server."""
