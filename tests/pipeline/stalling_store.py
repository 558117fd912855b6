"""A store that stops answering: a MongoDB wire-protocol endpoint on 127.0.0.1 for drain tests.

Until `stall()` it answers every command the way an empty MongoDB server
would (the handshake, buildInfo, createIndexes, empty cursors, writes that
matched nothing), which is all `pushsvc serve` needs to start and to idle.
From `stall()` on it still accepts connections and reads every request, and
never answers one: a store process that hangs, without needing a real server
(FerretDB) on the machine.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from datetime import UTC, datetime
from typing import Any

import bson
from bson.int64 import Int64

_OP_REPLY, _OP_QUERY, _OP_MSG = 1, 2004, 2013
_MORE_TO_COME = 1 << 1


def _answer(command: dict[str, Any]) -> dict[str, Any]:
    name = next(iter(command), "")
    if name.lower() in ("ismaster", "hello"):
        return {
            "ismaster": True, "isWritablePrimary": True, "helloOk": True, "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000, "localTime": datetime.now(UTC),
            "minWireVersion": 0, "maxWireVersion": 17, "connectionId": 1, "ok": 1.0,
        }
    if name == "buildInfo":
        return {"version": "7.0.0", "versionArray": [7, 0, 0, 0], "ok": 1.0}
    if name in ("find", "aggregate", "listIndexes", "listCollections"):
        db = command.get("$db", "db")
        return {"cursor": {"id": Int64(0), "ns": f"{db}.{command[name]}", "firstBatch": []}, "ok": 1.0}
    if name == "findAndModify":
        return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None, "ok": 1.0}
    return {"n": 0, "nModified": 0, "ok": 1.0}


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            while True:
                header = _read_exactly(sock, 16)
                length, request_id, _, op = struct.unpack("<iiii", header)
                body = _read_exactly(sock, length - 16)
                if self.server.stalled.is_set():
                    continue  # read, and never answered
                reply = self._reply(op, request_id, body)
                if reply:
                    sock.sendall(reply)
        except (ConnectionError, OSError):
            return

    def _reply(self, op: int, request_id: int, body: bytes) -> bytes:
        if op == _OP_QUERY:
            # flags, full collection name (cstring), skip, limit, then the command document.
            start = 4 + body.index(b"\0", 4) + 1 + 8
            command = bson.decode(body[start : start + struct.unpack_from("<i", body, start)[0]])
            doc = bson.encode(_answer(command))
            payload = struct.pack("<iqii", 0, 0, 0, 1) + doc
            return struct.pack("<iiii", 16 + len(payload), 0, request_id, _OP_REPLY) + payload
        if op == _OP_MSG:
            flags = struct.unpack_from("<I", body, 0)[0]
            command: dict[str, Any] = {}
            at = 4
            while at < len(body) - (4 if flags & 1 else 0):
                kind = body[at]
                at += 1
                size = struct.unpack_from("<i", body, at)[0]
                if kind == 0:
                    command.update(bson.decode(body[at : at + size]))
                at += size
            if flags & _MORE_TO_COME:
                return b""
            payload = struct.pack("<I", 0) + b"\0" + bson.encode(_answer(command))
            return struct.pack("<iiii", 16 + len(payload), 0, request_id, _OP_MSG) + payload
        return b""


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stalled = threading.Event()


class StallingStore:
    """The endpoint, served from a thread; `url` is its mongodb:// store URL."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, name="stalling-store", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self._server.server_address[1]}/pushsvc?directConnection=true"

    def stall(self) -> None:
        """Stops answering, on every connection, open or new."""
        self._server.stalled.set()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
