"""Generated protobuf and gRPC code for pushsvc.v1 (scripts/gen). Never edit by hand."""
