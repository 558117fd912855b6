"""The HTTP/2 transport every provider sends through: libcurl's multi interface on asyncio.

Why libcurl (through pycurl): the transport is the gateway's hottest code, and
libcurl multiplexing over nghttp2 costs about 25-30 µs of client CPU per
request, against ~235 µs for a raw-h2 asyncio client and ~900 µs for httpx's
HTTP/2 stack (reference/tooling.md §8.1; re-measured by bench/providers.py).
It is also correct where pure-Python h2 is not: nghttp2 keeps reading the
responses to streams at or below a GOAWAY's last_stream_id, and libcurl
re-sends streams the server refused (RST_STREAM(REFUSED_STREAM), or above
last_stream_id) on a fresh connection without reporting them as failures.

This module owns the asyncio glue and nothing else:

- one `pycurl.CurlMulti` per transport, driven by the event loop through
  libcurl's socket and timer callbacks (`loop.add_reader`/`add_writer`,
  `loop.call_later`): no thread, no polling;
- `connections_per_origin` HTTP/2 connections per host (libcurl queues further
  requests for a free stream instead of opening more; PIPEWAIT makes requests
  that arrive while the first connection is being set up wait for it, so a
  burst opens one connection, not hundreds);
- stream limits: the server's SETTINGS_MAX_CONCURRENT_STREAMS, capped by
  `max_streams_per_connection`; APNs allows one stream until the first valid
  JWT and then about 1000, and libcurl follows every change;
- a deadline per request (libcurl's TIMEOUT_MS, counted from the moment the
  request is queued, so queueing for a stream counts against it);
- a window on the requests in flight that shrinks while connections keep
  dying (see `_Window`): every answer in flight on a connection that dies is
  lost, and each lost answer to a push the provider took becomes a duplicate
  when the push is retried;
- batches (`post_many`): a batch's requests are handed to libcurl at once and
  its completions fill one results list and resolve one future, so a request
  costs no task or future of its own; a fresh connection starts with
  `SLOW_START` requests in flight (see `_slow_start`);
- cancellation (an `asyncio.CancelledError` in the caller removes the request
  from libcurl, which resets its stream) and shutdown (`aclose`);
- every libcurl error mapped to one of this module's `TransportError`s, so the
  providers never see a library exception.

What the errors mean for delivery (DESIGN.md "Correct under churn"): a
`ConnectFailed` request was never sent; an `OutcomeUnknown` request may or may
not have reached the provider (a lost connection, a reset stream, a deadline),
so it is retried, at-least-once, and must never be reported as a failure the
provider decided.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import pycurl

from pushsvc.clock import Clock, SystemClock
from pushsvc.throttle import LogThrottle

log = logging.getLogger("pushsvc.providers.transport")

_E_HTTP2_STREAM = 92
"""CURLE_HTTP2_STREAM: a stream was reset; pycurl has no name for it."""

_CONNECT_ERRORS = frozenset(
    {
        pycurl.E_COULDNT_RESOLVE_HOST,
        pycurl.E_COULDNT_CONNECT,
        pycurl.E_SSL_CONNECT_ERROR,
        pycurl.E_PEER_FAILED_VERIFICATION,
        pycurl.E_SSL_CERTPROBLEM,
        pycurl.E_SSL_CACERT_BADFILE,
        pycurl.E_UNSUPPORTED_PROTOCOL,
    }
)
"""Errors that happen before any byte of the request can have been sent."""
_LOST_ERRORS = frozenset(
    {
        pycurl.E_HTTP2,
        _E_HTTP2_STREAM,
        pycurl.E_RECV_ERROR,
        pycurl.E_SEND_ERROR,
        pycurl.E_GOT_NOTHING,
        pycurl.E_PARTIAL_FILE,
    }
)
"""Errors after the request may have been sent: the connection or the stream died."""


class TransportError(Exception):
    """A request got no HTTP response. `reason` is a short, secret-free name for receipts and logs."""

    reason = "TransportError"
    sent_maybe = True
    """False only when the request provably never left this process."""


class ConnectFailed(TransportError):
    """No connection could be made (DNS, TCP, TLS or certificate failure); nothing was sent."""

    reason = "ConnectFailed"
    sent_maybe = False


class QueueTimeout(TransportError):
    """The request waited for room among the requests in flight past its deadline; nothing was sent."""

    reason = "QueueTimeout"
    sent_maybe = False


class OutcomeUnknown(TransportError):
    """The request may have reached the provider, but no answer came back."""

    reason = "OutcomeUnknown"


class ConnectionLost(OutcomeUnknown):
    """The connection or the stream died after the request may have been sent."""

    reason = "ConnectionLost (outcome unknown)"


class DeadlineExceeded(OutcomeUnknown):
    """No complete answer within the request's deadline."""

    reason = "Timeout (outcome unknown)"


class TransportClosed(TransportError):
    """The transport was closed; the request was dropped (it may have been in flight)."""

    reason = "TransportClosed"


@dataclasses.dataclass(frozen=True, slots=True)
class TlsConfig:
    """What TLS trusts and presents, as PEM bytes (libcurl takes them as in-memory blobs).

    Attributes:
        ca_pem: Certificates to trust instead of the system store (the
            emulator's CA in development and tests).
        client_cert_pem: A client certificate chain (APNs certificate auth).
        client_key_pem: The unencrypted private key of `client_cert_pem`.
    """

    ca_pem: bytes | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None


@dataclasses.dataclass(slots=True)
class Response:
    """One HTTP response: status, headers (lower-case names) and body."""

    status: int
    raw_headers: Sequence[bytes]
    """The header lines as libcurl delivered them, status line included."""
    body: bytes
    _headers: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        """One header's value by lower-case name, without parsing the rest (the hot path's one lookup)."""
        if self._headers is not None:
            return self._headers.get(name)
        prefix = name.encode("latin-1") + b":"
        size = len(prefix)
        found = None
        for line in self.raw_headers:
            if line[:size].lower() == prefix:
                found = line[size:].strip().decode("latin-1")
        return found

    @property
    def headers(self) -> dict[str, str]:
        """Response headers by lower-case name (the last value wins); parsed on first use."""
        if self._headers is None:
            parsed: dict[str, str] = {}
            for line in self.raw_headers:
                name, sep, value = line.partition(b":")
                if sep and not name.startswith(b"HTTP/"):
                    parsed[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
            self._headers = parsed
        return self._headers


@dataclasses.dataclass(frozen=True, slots=True)
class TransportStats:
    """Counters for metrics and tests."""

    requests: int
    """Requests started."""
    in_flight: int
    """Requests queued in libcurl or on the wire right now."""
    connections_opened: int
    """New connections libcurl made (reconnects after GOAWAY or loss included)."""
    outcome_unknown: int
    """Requests that ended without an answer after they may have been sent."""
    window: int
    """Requests allowed in flight now: all the connections' streams, less after lost connections."""


PostRequest = tuple[str, Sequence[str], bytes]
"""One request of a batch: url, header lines, body."""

NO_DEFAULT_HEADERS = ("Accept:", "Expect:")
"""Header lines that keep libcurl's own `accept` and `expect` off the wire (append them to every request's lines)."""

class Transport(Protocol):
    """What a provider adapter needs from HTTP: POST and get the answer, or a `TransportError`."""

    async def post(self, url: str, headers: Iterable[str], body: bytes) -> Response:
        """POSTs `body` to `url`; returns any HTTP response; raises only `TransportError`."""
        ...

    async def post_many(self, requests: Sequence[PostRequest]) -> list[Response | TransportError]:
        """POSTs a batch; each request's response or `TransportError`, in order; never raises for one."""
        ...

    async def aclose(self) -> None:
        """Closes every connection."""
        ...


_WINDOW_START = 4
"""Requests a transport keeps in flight before its first answer (at least its floor)."""
_WINDOW_GROWTH = 0.25
"""What each answer adds to a window that may grow: a quarter of a request, so the
window grows by a quarter per round trip (from 4 to 1000 in about 25 round trips)."""


class _Window:
    """How many requests a transport keeps in flight: few at first, more as answers come back.

    A connection lost with requests in flight takes their answers with it;
    the provider may have taken every one of them, so every one is sent again
    and each becomes a duplicate. So the window:

    - starts small (`_WINDOW_START`) and grows by `_WINDOW_GROWTH` per answer
      up to `limit`, so a connection that dies early (a server that resets
      after a few hundred requests) takes a few dozen answers with it, not a
      burst of a thousand. The ramp is gentler than TCP's doubling, because a
      burst in flight is exactly what a reset turns into duplicates;
    - falls to `floor` at a loss (once per loss, however many requests it took
      down), and stays there while losses keep coming: a server that keeps
      dropping connections then costs at most a duplicate or so each time;
    - after `calm_s` without a loss, grows again by `_WINDOW_GROWTH` per answer.

    Measured (tests/pipeline/test_fault_storms.py, 2,000 tokens, 20% 503s,
    every connection reset at its 201st request, answers after 1 ms): 0.05 to
    0.6% duplicate deliveries, against 7% when the window started full and kept
    a quarter of what was in flight at each loss. The price: a new transport
    (or one after a loss and a calm spell) needs about 25 round trips to reach
    a thousand requests in flight.
    """

    def __init__(self, limit: int, floor: int, calm_s: float, monotonic: Callable[[], float]) -> None:
        self.limit = limit
        self.size = float(min(limit, max(floor, _WINDOW_START)))
        self._floor = floor
        self._calm_s = calm_s
        self._monotonic = monotonic
        self._lost_at = -math.inf
        self._cut_after = 0
        """Requests numbered below this one were in flight at the last cut: their loss is the same loss."""
        self.in_flight = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> bool:
        """Takes a place at once if one is free (the hot path: no timer, no future)."""
        if self.in_flight < self.size and not self._waiting:
            self.in_flight += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        slot = asyncio.get_running_loop().create_future()
        self._waiting.append(slot)
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self.release()  # granted as we were cancelled: hand it on
            elif slot in self._waiting:  # `_grant` drops cancelled places itself
                self._waiting.remove(slot)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._grant()

    def answered(self) -> None:
        """An answer came back: unless a loss is recent, the window grows by `_WINDOW_GROWTH`."""
        if self.size < self.limit and self._monotonic() - self._lost_at >= self._calm_s:
            self.size = min(float(self.limit), self.size + _WINDOW_GROWTH)
            self._grant()

    def lost(self, number: int, started: int) -> None:
        """Request `number` died with its connection; `started` requests had been started by then."""
        self._lost_at = self._monotonic()
        if number >= self._cut_after:
            self.size = float(self._floor)
            self._cut_after = started

    def _grant(self) -> None:
        while self._waiting and self.in_flight < self.size:
            slot = self._waiting.popleft()
            if not slot.done():
                self.in_flight += 1
                slot.set_result(None)


RECEIVE_BUFFER_BYTES = 4096
"""libcurl's receive buffer per handle (CURLOPT_BUFFERSIZE; its default is 16 KiB)."""
SEND_BUFFER_BYTES = 16384
"""libcurl's upload buffer per handle (CURLOPT_UPLOAD_BUFFERSIZE; 16 KiB is its minimum, 64 KiB its default)."""
SLOW_START = 16
"""Requests in flight on a connection that has just answered its first one (see `Http2Transport._slow_start`)."""

_URL, _HTTPHEADER, _POSTFIELDS = pycurl.URL, pycurl.HTTPHEADER, pycurl.POSTFIELDS
_NUM_CONNECTS, _RESPONSE_CODE = pycurl.NUM_CONNECTS, pycurl.RESPONSE_CODE
# Called unbound on the hot path: a pycurl handle's attribute lookup costs more than the call.
_setopt, _getinfo = pycurl.Curl.setopt, pycurl.Curl.getinfo


class _Batch:
    """The requests of one `post_many` call in libcurl: one results list, one future for all of them."""

    __slots__ = ("requests", "results", "future", "pending", "adding")

    def __init__(
        self,
        requests: Sequence[PostRequest],
        results: list[Response | TransportError | None],
        future: asyncio.Future[None],
    ) -> None:
        self.requests = requests
        self.results = results
        self.future = future
        self.pending = 0
        """Requests of the batch handed to libcurl and not completed yet."""
        self.adding = True
        """Requests are still being handed to libcurl: the future waits for the last of them too."""


class Http2Transport:
    """HTTP/2 over TLS to provider hosts, multiplexed, on the running event loop.

    One instance per set of credentials (APNs binds a connection to the key or
    certificate of its first request). Create it anywhere; it attaches to the
    event loop on the first request and must be closed with `aclose()` on that
    loop.

    Args:
        tls: What to trust and present.
        clock: The process clock (kept for the metrics that time requests).
        connections_per_origin: HTTP/2 connections per host before requests
            queue for stream slots instead.
        max_streams_per_connection: A cap on concurrent streams per connection
            even when the server allows more.
        request_timeout_s: Deadline of one request, queueing included.
        connect_timeout_s: Deadline of connection set-up (TCP + TLS).
        calm_s: How long after the last lost connection the window on
            requests in flight starts growing back (see `_Window`).
        user_agent: The user-agent header.
    """

    def __init__(
        self,
        *,
        tls: TlsConfig | None = None,
        clock: Clock | None = None,
        connections_per_origin: int = 1,
        max_streams_per_connection: int = 1000,
        request_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        calm_s: float = 5.0,
        user_agent: str = "pushsvc",
    ) -> None:
        if connections_per_origin < 1:
            raise ValueError("connections_per_origin must be at least 1")
        if max_streams_per_connection < 1:
            raise ValueError("max_streams_per_connection must be at least 1")
        if request_timeout_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        self._tls = tls or TlsConfig()
        self._clock = clock or SystemClock()
        # Connection trouble is logged rate-limited, by host, never with a path (tokens live there).
        self._events = LogThrottle(log, self._clock, interval_s=10.0)
        self._connections_per_origin = connections_per_origin
        self._max_streams = max_streams_per_connection
        self._timeout_ms = max(1, int(request_timeout_s * 1000))
        self._timeout_s = self._timeout_ms / 1000
        self._connect_timeout_ms = max(1, int(connect_timeout_s * 1000))
        self._user_agent = user_agent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._multi: pycurl.CurlMulti | None = None
        self._free: list[pycurl.Curl] = []
        self._sinks: dict[pycurl.Curl, tuple[list[bytes], list[bytes]]] = {}
        """The lists each handle's answer lands in (set once per handle; `_complete` empties them)."""
        self._active: dict[pycurl.Curl, tuple[_Batch, int, int]] = {}
        """Each request in libcurl: its batch, its index there, and its number (for `_Window.lost`)."""
        self._fds: dict[int, int] = {}
        """libcurl's wanted events per socket (POLL_IN/OUT/INOUT)."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_now = False
        """The pending timer is an immediate one (call_soon)."""
        self._primed: set[str] = set()
        """Origins (scheme://host:port) that have answered a request on the current connection."""
        self._probes: dict[str, asyncio.Future[None]] = {}
        """The one request in flight to an origin that has not been primed yet."""
        self._closed = False
        self._requests = 0
        self._connections = 0
        self._unknown = 0
        self._lost_since_connect = False
        """Whether a connection was lost since the last one opened: tells a GOAWAY's reconnect from a loss's."""
        self._window = _Window(
            max_streams_per_connection * connections_per_origin, connections_per_origin, calm_s, self._clock.monotonic
        )

    # --- public ----------------------------------------------------------

    async def post(self, url: str, headers: Iterable[str], body: bytes) -> Response:
        """POSTs `body` to `url` over HTTP/2 and returns the response, whatever its status.

        One request as a batch of one (see `post_many`); `headers` need not
        carry `NO_DEFAULT_HEADERS`, they are added here.

        Raises:
            ConnectFailed: No connection could be made; nothing was sent.
            ConnectionLost: The connection or stream died; the outcome is unknown.
            DeadlineExceeded: No answer in time; the outcome is unknown.
            TransportClosed: The transport is (being) closed.
            TransportError: Any other libcurl failure.
        """
        (result,) = await self.post_many(((url, [*headers, *NO_DEFAULT_HEADERS], body),))
        if isinstance(result, TransportError):
            raise result
        return result

    async def post_many(self, requests: Sequence[PostRequest]) -> list[Response | TransportError]:
        """POSTs a batch of requests at once; returns each one's response or failure, in order.

        The batch costs one future, resolved when libcurl has completed its
        last request: no task or future per request. Requests wait for room in
        the window of requests in flight (`_Window`) only while it is full.

        Args:
            requests: (url, header lines, body) each. The url is absolute
                https; header lines are "name: value" and go to libcurl as
                they are (it adds :method, :path, :scheme, :authority and
                content-length itself), so the caller appends
                `NO_DEFAULT_HEADERS` to keep libcurl's own defaults off the wire.

        Returns:
            A `Response` (any status) or the `TransportError` of each request:
            `ConnectFailed` (nothing was sent), `QueueTimeout` (no room in the
            window before the deadline; nothing was sent), `ConnectionLost` and
            `DeadlineExceeded` (the outcome is unknown), `TransportClosed`.
        """
        count = len(requests)
        if self._closed:
            return [TransportClosed("transport is closed")] * count
        results: list[Response | TransportError | None] = [None] * count
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        url = requests[0][0] if count else ""
        origin = url[: url.find("/", 8)]
        ready: Sequence[int]
        prefix = origin + "/"
        if origin in self._primed and all(request[0].startswith(prefix) for request in requests):
            ready = range(count)  # the hot path: one origin, answered before
        else:
            ready = []
            waiting: dict[str, list[int]] = {}
            for index, request in enumerate(requests):
                url = request[0]
                origin = url[: url.find("/", 8)]
                if origin in self._primed:
                    ready.append(index)
                else:
                    waiting.setdefault(origin, []).append(index)
            for origin, indices in waiting.items():
                ready += await self._prime(origin, indices, requests, results, deadline)
            ready.sort()
        if ready:
            await self._send_many(ready, requests, results, deadline)
        return results  # type: ignore[return-value]  # every slot is filled by now

    async def _prime(
        self,
        origin: str,
        indices: list[int],
        requests: Sequence[PostRequest],
        results: list[Response | TransportError | None],
        deadline: float,
    ) -> list[int]:
        """Sends to an origin not yet primed one request at a time until one is answered; returns the rest.

        Until one request to an origin has been answered, requests go one at
        a time: libcurl assumes 100 streams on a new connection until the
        server's SETTINGS arrive, and APNs allows 1 until a valid JWT
        succeeds (and may drop a connection that overruns it). Once an
        answer came back, libcurl knows the real limit and follows it.
        Requests still waiting at their deadline fail with `ConnectFailed`.
        """
        loop = asyncio.get_running_loop()
        queue = collections.deque(indices)
        while queue and origin not in self._primed:
            probe = self._probes.get(origin)
            if probe is not None:
                # Another batch probes this origin: wait for its answer.
                try:
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        await asyncio.shield(probe)
                except TimeoutError:
                    break
                continue
            if loop.time() >= deadline:
                break
            index = queue.popleft()
            probe = loop.create_future()
            self._probes[origin] = probe
            try:
                await self._send_many((index,), requests, results, deadline)
            finally:
                del self._probes[origin]
                probe.set_result(None)
            if isinstance(results[index], Response):
                self._primed.add(origin)
                self._slow_start()
        if origin in self._primed:
            return list(queue)
        for index in queue:
            results[index] = ConnectFailed("no connection to the provider became ready in time")
        return []

    def _slow_start(self) -> None:
        """A connection that just answered its first request gets at most `SLOW_START` requests in flight.

        A batch sends every request at once. On a fresh connection that is a
        whole batch in flight, and a server that drops the connection takes
        every answer with it (each a duplicate when retried). The cap keeps a
        window that was grown on an earlier connection from doing that; the
        window's own ramp (`_Window`) then grows it back to the full limit.
        """
        window = self._window
        window.size = min(window.size, float(max(SLOW_START, self._connections_per_origin)))

    async def _send_many(
        self,
        indices: Sequence[int],
        requests: Sequence[PostRequest],
        results: list[Response | TransportError | None],
        deadline: float,
    ) -> None:
        multi = self._multi if self._multi is not None else self._attach()
        loop = self._loop
        assert loop is not None
        batch = _Batch(requests, results, loop.create_future())
        window = self._window
        active = self._active
        free = self._free
        try:
            for position, index in enumerate(indices):
                if self._closed:
                    for later in indices[position:]:
                        results[later] = TransportClosed("transport is closed")
                    break
                if not window.try_acquire():
                    try:
                        # Waiting for the window counts against the request's deadline, as queueing in libcurl does.
                        async with asyncio.timeout(max(0.0, deadline - loop.time())):
                            await window.acquire()
                    except TimeoutError:
                        for later in indices[position:]:
                            results[later] = QueueTimeout("no room among the requests in flight before the deadline")
                        break
                    if self._closed:
                        window.release()
                        for later in indices[position:]:
                            results[later] = TransportClosed("transport is closed")
                        break
                url, headers, body = requests[index]
                handle = free.pop() if free else self._new_handle()
                _setopt(handle, _URL, url)
                _setopt(handle, _HTTPHEADER, headers)
                _setopt(handle, _POSTFIELDS, body)
                active[handle] = (batch, index, self._requests)
                self._requests += 1
                batch.pending += 1
                multi.add_handle(handle)
            batch.adding = False
            if batch.pending:
                await batch.future
        finally:
            if batch.pending:
                # Cancelled with requests in flight: take them back from
                # libcurl, which resets their streams, and retire the handles.
                # (A completed handle may already carry someone else's request.)
                for handle, entry in list(active.items()):
                    if entry[0] is batch:
                        del active[handle]
                        self._remove(handle, reuse=False)
                        window.release()
                        results[entry[1]] = TransportClosed("request withdrawn")
                batch.pending = 0

    def stats(self) -> TransportStats:
        """Counters since the transport was made."""
        return TransportStats(
            requests=self._requests,
            in_flight=len(self._active),
            connections_opened=self._connections,
            outcome_unknown=self._unknown,
            window=int(self._window.size),
        )

    async def aclose(self) -> None:
        """Closes every connection; requests still in flight fail with `TransportClosed`."""
        if self._closed:
            return
        self._closed = True
        for handle, (batch, index, _) in list(self._active.items()):
            del self._active[handle]
            self._remove(handle, reuse=False)
            self._window.release()
            batch.results[index] = TransportClosed("transport closed")
            batch.pending -= 1
            if not batch.pending and not batch.adding and not batch.future.done():
                batch.future.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._loop is not None:
            for fd in list(self._fds):
                self._unwatch(fd)
        for handle in self._free:
            handle.close()
        self._free.clear()
        self._sinks.clear()
        if self._multi is not None:
            self._multi.close()
            self._multi = None

    # --- libcurl set-up --------------------------------------------------

    def _attach(self) -> pycurl.CurlMulti:
        self._loop = asyncio.get_running_loop()
        multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, self._connections_per_origin)
        multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, self._max_streams)
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._multi = multi
        return multi

    def _new_handle(self) -> pycurl.Curl:
        handle = pycurl.Curl()
        handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
        handle.setopt(pycurl.PIPEWAIT, 1)
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.TCP_KEEPALIVE, 1)
        handle.setopt(pycurl.TIMEOUT_MS, self._timeout_ms)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, self._connect_timeout_ms)
        handle.setopt(pycurl.USERAGENT, self._user_agent)
        # A pooled handle keeps its buffers for its life, and a fan-out keeps a thousand handles: libcurl's
        # defaults (16 KiB to receive, 64 KiB to send) cost ~40 MiB of RSS there. Provider answers are a few
        # hundred bytes and request bodies at most a few KiB (APNs and FCM cap payloads at 4 KiB).
        handle.setopt(pycurl.BUFFERSIZE, RECEIVE_BUFFER_BYTES)
        handle.setopt(pycurl.UPLOAD_BUFFERSIZE, SEND_BUFFER_BYTES)
        # The answer lands in lists the handle keeps for its life: a reused
        # handle needs no callbacks set per request (`_complete` empties them).
        chunks: list[bytes] = []
        header_lines: list[bytes] = []
        handle.setopt(pycurl.WRITEFUNCTION, chunks.append)
        handle.setopt(pycurl.HEADERFUNCTION, header_lines.append)
        self._sinks[handle] = (chunks, header_lines)
        # No redirects, no proxies from the environment: providers are called directly.
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        handle.setopt(pycurl.PROXY, "")
        if self._tls.ca_pem is not None:
            handle.setopt(pycurl.CAINFO_BLOB, self._tls.ca_pem)
        if self._tls.client_cert_pem is not None:
            handle.setopt(pycurl.SSLCERTTYPE, "PEM")
            handle.setopt(pycurl.SSLCERT_BLOB, self._tls.client_cert_pem)
            if self._tls.client_key_pem is not None:
                handle.setopt(pycurl.SSLKEYTYPE, "PEM")
                handle.setopt(pycurl.SSLKEY_BLOB, self._tls.client_key_pem)
        return handle

    # --- libcurl callbacks -----------------------------------------------

    def _on_socket(self, what: int, fd: int, multi: object, socketp: object) -> None:
        if what == pycurl.POLL_REMOVE:
            self._unwatch(fd)
            return
        if self._fds.get(fd) == what:
            return
        self._unwatch(fd)
        assert self._loop is not None
        if what & pycurl.POLL_IN:
            self._loop.add_reader(fd, self._on_ready, fd, pycurl.CSELECT_IN)
        if what & pycurl.POLL_OUT:
            self._loop.add_writer(fd, self._on_ready, fd, pycurl.CSELECT_OUT)
        self._fds[fd] = what

    def _unwatch(self, fd: int) -> None:
        what = self._fds.pop(fd, 0)
        assert self._loop is not None
        if what & pycurl.POLL_IN:
            self._loop.remove_reader(fd)
        if what & pycurl.POLL_OUT:
            self._loop.remove_writer(fd)

    def _on_timer(self, timeout_ms: int) -> None:
        if timeout_ms == 0 and self._timer_now:
            # Every request added asks for an immediate run; one per tick serves them all.
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_now = False
        if timeout_ms < 0 or self._loop is None:
            return
        if timeout_ms == 0:
            self._timer = self._loop.call_soon(self._on_timeout)  # type: ignore[assignment]
            self._timer_now = True
        else:
            self._timer = self._loop.call_later(timeout_ms / 1000, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        self._timer_now = False
        self._drive(pycurl.SOCKET_TIMEOUT, 0)

    def _on_ready(self, fd: int, event: int) -> None:
        self._drive(fd, event)

    def _drive(self, fd: int, event: int) -> None:
        multi = self._multi
        if multi is None:
            return
        try:
            multi.socket_action(fd, event)
        except pycurl.error as exc:  # a libcurl multi error: a bug, not a network event
            log.error("libcurl multi error: %s", exc.args[0] if exc.args else exc)
            return
        while True:
            queued, done, failed = multi.info_read()
            for handle in done:
                self._complete(handle, None, "")
            for handle, code, message in failed:
                self._complete(handle, code, message)
            if not queued:
                break

    # --- completion ------------------------------------------------------

    def _complete(self, handle: pycurl.Curl, code: int | None, message: str) -> None:
        entry = self._active.pop(handle, None)
        if entry is None:
            return
        batch, index, number = entry
        connects = _getinfo(handle, _NUM_CONNECTS)
        if connects:
            self._connections += connects
            if self._connections > 1:
                # libcurl handles GOAWAY itself; a reconnect with no loss before
                # it means the server wound the last connection down.
                why = "after a lost connection" if self._lost_since_connect else "after the server closed the last one (GOAWAY)"
                self._events.log(
                    logging.INFO, "reconnect", "reconnected: HTTP/2 connection %d, %s", self._connections, why
                )
            self._lost_since_connect = False
        window = self._window
        result: Response | TransportError
        if code is None:
            chunks, header_lines = self._sinks[handle]
            result = Response(_getinfo(handle, _RESPONSE_CODE), header_lines[:], b"".join(chunks))
            chunks.clear()
            header_lines.clear()
            self._remove(handle, reuse=True)
            window.release()
            window.answered()
        else:
            chunks, header_lines = self._sinks[handle]
            chunks.clear()
            header_lines.clear()
            result = _error(code, message)
            if isinstance(result, OutcomeUnknown):
                self._unknown += 1
            url = batch.requests[index][0]
            origin = url[: url.find("/", 8)]
            if isinstance(result, ConnectionLost):
                self._lost_since_connect = True
                window.lost(number, self._requests)
            elif isinstance(result, ConnectFailed):
                # Nothing answered: the next connection is primed again, one request first.
                self._primed.discard(origin)
            # A lost connection is not re-primed: the origin has answered us, and
            # libcurl re-sends what a new connection refuses before its SETTINGS.
            # Priming again held every request behind one probe and then sent
            # them in one burst; a server that drops connections lost the
            # answers to that whole burst (each a duplicate when retried).
            if isinstance(result, (ConnectFailed, ConnectionLost)):
                self._events.warning(
                    f"{type(result).__name__} {origin}", "%s: %s (%s)", origin, result.reason, type(result).__name__
                )
            self._remove(handle, reuse=True)
            window.release()
        batch.results[index] = result
        batch.pending -= 1
        if not batch.pending and not batch.adding and not batch.future.done():
            batch.future.set_result(None)

    def _remove(self, handle: pycurl.Curl, *, reuse: bool) -> None:
        if self._multi is not None:
            self._multi.remove_handle(handle)
        if reuse and not self._closed and len(self._free) < self._max_streams * self._connections_per_origin:
            # The next request replaces the url, headers and body; until then
            # the parked handle keeps the last ones (bounded by the pool's size).
            self._free.append(handle)
        else:
            self._sinks.pop(handle, None)
            handle.close()


def _error(code: int, message: str) -> TransportError:
    """Maps a libcurl error code to this module's failure types (the message is for logs only)."""
    if code in _CONNECT_ERRORS:
        return ConnectFailed(f"curl error {code}: {message}")
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return DeadlineExceeded(f"curl error {code}: {message}")
    if code in _LOST_ERRORS:
        return ConnectionLost(f"curl error {code}: {message}")
    error = OutcomeUnknown(f"curl error {code}: {message}")
    return error
