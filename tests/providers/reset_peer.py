"""Run by test_fcm_auth: OAuth requests to a token endpoint that resets every connection.

The reset must land after the client's TCP connect and before its TLS
handshake, a window of microseconds. An audit hook widens it: on this
thread, each new socket object (the standard library's TLS wrap of a
connected socket makes one) waits 20 ms, long enough for the endpoint's
thread to accept and reset. Audit hooks cannot be removed, hence a process
of its own.

Prints one JSON line: the requests made, how many were transport errors,
the unclosed-socket warnings the garbage collector raised, and the file
descriptors left open.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import warnings

import google.auth.exceptions

from pushsvc.providers.fcm_auth import UrllibAuthRequest


def _reset_each_connection(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        # Linger 0: close() sends a reset instead of a FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


def main(requests: int) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=_reset_each_connection, args=(listener,), daemon=True).start()
    client = threading.get_ident()

    def widen(event: str, _args: tuple[object, ...]) -> None:
        if event == "socket.__new__" and threading.get_ident() == client:
            time.sleep(0.02)

    request = UrllibAuthRequest(context=ssl.create_default_context(), default_timeout_s=5)
    before = len(os.listdir("/proc/self/fd"))
    errors = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        sys.addaudithook(widen)
        for _ in range(requests):
            try:
                request(f"https://127.0.0.1:{port}/token", method="POST", body=b"x")
            except google.auth.exceptions.TransportError:
                errors += 1
        gc.collect()
    after = len(os.listdir("/proc/self/fd"))
    print(json.dumps({
        "requests": requests,
        "transport_errors": errors,
        "unclosed_warnings": [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)],
        "fds_left_open": after - before,
    }))


if __name__ == "__main__":
    main(int(sys.argv[1]))
