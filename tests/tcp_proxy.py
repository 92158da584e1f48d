"""A loopback TCP proxy for fault tests: put it in front of a Redis port and
point one process at it, to cut that process off from Redis (a network
partition) while the others still reach it, or to lose one reply.

Standard library only: one thread accepts, two threads per connection pump
bytes (client to server, server to client).

- :meth:`TcpProxy.cut` is a partition, not a refusal: connections stay open
  and new ones are still accepted (and connected upstream), but no byte
  passes either way. What is sent meanwhile is buffered, as a TCP stack
  keeps unacknowledged data to retransmit, and :meth:`TcpProxy.heal` delivers
  it, in order. That includes the end of a connection: a client that gave up
  during the cut (a socket timeout) and closed its socket has its commands
  delivered to Redis at heal time all the same, then the connection closes.
  Replies Redis sends to a client that is gone are dropped.
- :meth:`TcpProxy.drop_next_reply` loses one reply: the command reaches Redis
  and runs, Redis's reply is swallowed and that client connection is closed.
- :meth:`TcpProxy.hold_next` delays one command: it reaches Redis only at
  :meth:`TcpProxy.release`, and its client waits for the reply meanwhile.
- :meth:`TcpProxy.reset_all` closes every connection at once.
- :meth:`TcpProxy.chaos` does the above at random, command by command: loses
  replies, delays commands, and closes connections halfway through a command
  (Redis gets part of it, and drops it with the connection).
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field

#: Seconds the accept loop waits before checking whether it is stopped.
_POLL = 0.1
_CHUNK = 65536


@dataclass
class Chaos:
    """Odds, per chunk a client sends, of each fault :meth:`TcpProxy.chaos` injects."""

    drop_reply: float = 0.0
    cut_midway: float = 0.0
    delay: float = 0.0
    #: The longest delay, in seconds.
    longest_delay: float = 0.5
    seed: int | None = None
    rng: random.Random = field(init=False)
    #: Faults injected so far, by kind.
    injected: dict[str, int] = field(default_factory=lambda: {"drop_reply": 0, "cut_midway": 0, "delay": 0})

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class _Direction:
    """One direction of one connection: bytes from ``src`` to ``dst``, or into a buffer while cut."""

    def __init__(self, connection: _Connection, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        self.connection = connection
        self.src = src
        self.dst = dst
        #: Client to server (where drop_next_reply looks for its command).
        self.upstream = upstream
        self.lock = threading.Lock()
        self.buffer: list[bytes] = []
        self.eof_buffered = False

    def pump(self) -> None:
        if not self._pump():
            # A socket error, or a reply to drop: the whole connection goes.
            self.connection.close()
        self.connection.pump_ended()

    def _pump(self) -> bool:
        """Move bytes until the stream ends (True) or the connection must close (False)."""
        while True:
            try:
                data = self.src.recv(_CHUNK)
            except OSError:
                return False
            with self.lock:
                # Cut or held since the last chunk, or healed or released with
                # something buffered, which goes first (it may be held again).
                if not self._blocked() and not self._flush_locked():
                    return False
                if self._blocked():
                    if data:
                        self.buffer.append(data)
                        continue
                    self.eof_buffered = True
                    return True
                if not data:
                    self._send_eof()
                    return True
                if not self._forward(data):
                    return False

    def _blocked(self) -> bool:
        """Whether bytes wait: the proxy is cut, or this is a held command's direction."""
        return self.connection.proxy.is_cut or (self.upstream and self.connection.held)

    def flush(self) -> None:
        """Deliver what was buffered during a cut, and the end of the stream if it came."""
        with self.lock:
            ok = self._flush_locked()
        if not ok:
            self.connection.close()

    def _flush_locked(self) -> bool:
        while self.buffer and not self._blocked():
            if not self._forward(self.buffer.pop(0)):
                return False
        if self.eof_buffered and not self._blocked():
            self.eof_buffered = False
            self._send_eof()
        return True

    def _forward(self, data: bytes) -> bool:
        """Send ``data`` on; False if the connection must close."""
        proxy = self.connection.proxy
        if self.upstream:
            if proxy.take_hold(data):
                # Held: it waits, first in line, for release().
                self.connection.held = True
                self.buffer.insert(0, data)
                return True
            chaos = proxy.take_chaos()
            if chaos == "cut_midway":
                with contextlib.suppress(OSError):
                    self.dst.sendall(data[: max(1, len(data) // 2)])
                return False
            if chaos == "delay":
                time.sleep(proxy.chaos_delay())
            if chaos == "drop_reply" or proxy.take_drop(data):
                self.connection.dropping.set()
        elif self.connection.dropping.is_set():
            # The reply to the marked command: swallow it and hang up on the client.
            return False
        try:
            self.dst.sendall(data)
        except OSError:
            return False
        return True

    def _send_eof(self) -> None:
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)


class _Connection:
    def __init__(self, proxy: TcpProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.dropping = threading.Event()
        #: A command of this connection is held (hold_next): nothing more goes up until release().
        self.held = False
        self.directions = (_Direction(self, client, server, True), _Direction(self, server, client, False))
        self._lock = threading.Lock()
        self._pumps = 2
        self._closed = False
        self.threads = [
            threading.Thread(target=direction.pump, name=f"tcp-proxy-{proxy.port}", daemon=True)
            for direction in self.directions
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def flush(self) -> None:
        for direction in self.directions:
            direction.flush()

    def close(self) -> None:
        """Hang up on both sides; the pumps wake (shutdown, not close, wakes a blocked recv)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.proxy.forget(self)

    def pump_ended(self) -> None:
        with self._lock:
            self._pumps -= 1
            last = self._pumps == 0
        if last:
            # Both directions ended: nothing more can pass.
            self.close()
            self.client.close()
            self.server.close()


class TcpProxy:
    """Forwards connections made to ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._cut = False
        self._drop: bytes | None = None
        self._hold: bytes | None = None
        self._chaos: Chaos | None = None
        self._stopped = threading.Event()
        self._accepter = threading.Thread(target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True)
        #: Connections accepted so far (for tests of the proxy itself).
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def is_cut(self) -> bool:
        return self._cut

    def start(self) -> TcpProxy:
        self._accepter.start()
        return self

    def cut(self) -> None:
        """Stop every byte, both ways, on open and new connections; buffer them until :meth:`heal`."""
        self._cut = True

    def heal(self) -> None:
        """Forward again, delivering first what was buffered during the cut."""
        self._cut = False
        for connection in self._snapshot():
            connection.flush()

    def drop_next_reply(self, matching: bytes) -> None:
        """Lose the reply to the next command whose bytes (one chunk read) contain ``matching``.

        The command reaches the server and runs; its reply is swallowed and
        that client connection is closed, so the client sees a connection
        error. One command only: arm again for the next.
        """
        with self._lock:
            self._drop = matching

    def chaos(self, chaos: Chaos | None) -> None:
        """Inject faults at random on every connection (``None``: stop). ``chaos.injected`` counts them."""
        with self._lock:
            self._chaos = chaos

    def take_chaos(self) -> str | None:
        """The fault to inject on a chunk a client sends, if any."""
        with self._lock:
            chaos = self._chaos
            if chaos is None:
                return None
            draw = chaos.rng.random()
            for kind in ("drop_reply", "cut_midway", "delay"):
                odds = float(getattr(chaos, kind))
                if draw < odds:
                    chaos.injected[kind] += 1
                    return kind
                draw -= odds
            return None

    def chaos_delay(self) -> float:
        with self._lock:
            return 0.0 if self._chaos is None else self._chaos.rng.uniform(0, self._chaos.longest_delay)

    def take_drop(self, data: bytes) -> bool:
        """Whether ``data`` (client to server) is the armed command; disarms if so."""
        with self._lock:
            if self._drop is not None and self._drop in data:
                self._drop = None
                return True
            return False

    @property
    def drop_pending(self) -> bool:
        """Whether :meth:`drop_next_reply` is armed and no command has matched yet."""
        with self._lock:
            return self._drop is not None

    def hold_next(self, matching: bytes) -> None:
        """Delay the next command whose bytes (one chunk read) contain ``matching``, until :meth:`release`.

        Nothing more from that client connection reaches the server
        meanwhile (its client waits for the reply, as on a slow network or
        a stalled host); other connections are not affected. One command
        only: arm again for the next.
        """
        with self._lock:
            self._hold = matching

    def take_hold(self, data: bytes) -> bool:
        """Whether ``data`` (client to server) is the command to hold; disarms if so."""
        with self._lock:
            if self._hold is not None and self._hold in data:
                self._hold = None
                return True
            return False

    @property
    def hold_pending(self) -> bool:
        """Whether :meth:`hold_next` is armed and no command has matched yet."""
        with self._lock:
            return self._hold is not None

    @property
    def holding(self) -> bool:
        """Whether a command is held now."""
        return any(connection.held for connection in self._snapshot())

    def release(self) -> None:
        """Deliver held commands (and what followed them), in order."""
        for connection in self._snapshot():
            if connection.held:
                connection.held = False
                connection.flush()

    def reset_all(self) -> None:
        """Close every connection open now (both sides)."""
        for connection in self._snapshot():
            connection.close()

    @property
    def connections(self) -> int:
        """Connections open now."""
        with self._lock:
            return len(self._connections)

    def stop(self) -> None:
        self._stopped.set()
        if self._accepter.is_alive():
            self._accepter.join(5)
        self._listener.close()
        self.reset_all()

    def forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _snapshot(self) -> list[_Connection]:
        with self._lock:
            return list(self._connections)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            readable, _, _ = select.select([self._listener], [], [], _POLL)
            if not readable:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()  # the target is down: as if it refused
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, client, server)
            with self._lock:
                self._connections.add(connection)
                self.accepted += 1
            connection.start()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
