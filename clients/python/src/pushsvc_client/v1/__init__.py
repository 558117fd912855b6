"""Generated protobuf and gRPC code for pushsvc.v1 (scripts/gen-clients). Never edit by hand."""
