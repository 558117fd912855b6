"""MethodSymbols: the descriptor pool reflection answers from, resolving method names too.

grpcio-reflection looks every symbol up with the pool's
`FindFileContainingSymbol`, which in protobuf's upb pool knows messages,
enums and services but not methods (grpc/grpc#34743). So
`grpcurl describe pushsvc.v1.PushService.RegisterToken` and ghz without
`--proto` got "Symbol not found". This adapter answers a method name with its
service's file and leaves everything else to the pool; nothing in protobuf or
grpcio-reflection is changed.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor, descriptor_pool


class MethodSymbols:
    """A descriptor pool whose `FindFileContainingSymbol` also finds `package.Service.Method`."""

    def __init__(self, pool: descriptor_pool.DescriptorPool | None = None) -> None:
        self._pool = pool or descriptor_pool.Default()

    def FindFileContainingSymbol(self, symbol: str) -> descriptor.FileDescriptor:  # noqa: N802 - the pool's API
        """The file that defines `symbol`, a method name included."""
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service_name, _, method_name = symbol.rpartition(".")
            if not service_name:
                raise
            try:
                service = self._pool.FindServiceByName(service_name)
            except KeyError:
                raise KeyError(symbol) from None
            if method_name not in service.methods_by_name:
                raise KeyError(symbol) from None
            return service.file

    def __getattr__(self, name: str) -> Any:
        # Every other lookup (files by name, messages, extensions) is the pool's own.
        return getattr(self._pool, name)
