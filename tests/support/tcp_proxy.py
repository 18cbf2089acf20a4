"""A loopback TCP forwarder that can cut, or hold, a connection after N bytes one way."""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from typing import Literal

from k3s_backup.plumbing.loopback import Service

POLL = 0.1  # how often idle threads notice stop()
JOIN_TIMEOUT = 2.0
MAX_CONNECTIONS = 64
CHUNK = 65536

Direction = Literal["up", "down"]  # client-to-server, server-to-client


def _abort(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: the peer sees a reset, as on a dropped link."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class CuttingProxy(Service):
    """Forwards 127.0.0.1:`port` to `target`; a context manager.

    With `cut_after` set, each connection is reset on both sides once that many bytes went
    from the client to the server (`cut_counting = "down"`: from the server to the client, for
    a download, whose requests are few bytes). Set `cut_after = None` later to let new
    connections through.
    With `hold=True`, a connection reaching `cut_after` is frozen instead (nothing more is
    forwarded either way, as on a stalled link) and `held` is set, until `release()`; a test can
    then act at a known point of an upload. `freeze()` holds every open connection the same
    way, at once. With `max_cuts`, connections after that many cuts go through (a blip);
    connections up to number `uncut_until` (counted from 1) go through too, so a test can cut
    a command's second connection and not its first.
    """

    def __init__(
        self,
        target: tuple[str, int],
        cut_after: int | None = None,
        hold: bool = False,
        max_cuts: int | None = None,
    ) -> None:
        self.target = target
        self.cut_after = cut_after
        self.cut_counting: Direction = "up"  # which way `cut_after` counts bytes
        self.max_cuts = max_cuts
        self.uncut_until = 0
        self.hold = hold
        self.cuts = 0  # connections cut so far
        self.bytes_up = 0  # client-to-server bytes forwarded, all connections
        self.bytes_up_each: list[int] = []  # the same for each connection once it ended
        self.bytes_down_each: list[int] = []  # server-to-client, each connection once it ended
        self.held = threading.Event()
        self._released = threading.Event()
        self._freezing = threading.Event()
        self._lock = threading.Lock()
        self.connections = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))  # port 0: no race for a free port
        self._listener.listen(16)
        self._listener.settimeout(POLL)
        self.port: int = self._listener.getsockname()[1]

    def start(self) -> CuttingProxy:
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        with self._listener:
            while not self._stopping.is_set():
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                if self.connections >= MAX_CONNECTIONS:
                    _abort(client)
                    continue
                self.connections += 1
                spent = self.max_cuts is not None and self.cuts >= self.max_cuts
                spared = self.connections <= self.uncut_until
                limit = None if spent or spared else self.cut_after
                self._spawn(self._serve, client, limit, self.cut_counting)

    def _serve(self, client: socket.socket, limit: int | None, counting: Direction) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _abort(client)
            return
        # One thread owns both sockets, so closing them never races a blocked recv elsewhere.
        with selectors.DefaultSelector() as selector:
            sent = {client: 0, upstream: 0}  # bytes forwarded from each side
            cut_side = client if counting == "up" else upstream
            try:
                self._pump(selector, sent, cut_side, limit)
            finally:
                _abort(client)
                _abort(upstream)
        with self._lock:
            self.bytes_up_each.append(sent[client])
            self.bytes_down_each.append(sent[upstream])

    def _pump(
        self,
        selector: selectors.BaseSelector,
        sent: dict[socket.socket, int],
        cut_side: socket.socket,
        limit: int | None,
    ) -> None:
        """Forward until either side closes, or the cut once `cut_side` sent `limit` bytes;
        `sent` counts what each side sent."""
        client, upstream = sent  # in that order
        for sock in sent:
            sock.setblocking(True)
            sock.settimeout(None)
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        open_sides = 2
        while open_sides and not self._stopping.is_set():
            if self._freezing.is_set():
                self._stall()
                return
            for key, _ in selector.select(POLL):
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                sink: socket.socket = key.data
                try:
                    data = source.recv(CHUNK)
                except OSError:
                    return
                if not data:  # a clean half-close: pass it on
                    selector.unregister(source)
                    open_sides -= 1
                    try:
                        sink.shutdown(socket.SHUT_WR)
                    except OSError:
                        return
                    continue
                if source is cut_side and limit is not None:
                    data = data[: limit - sent[source]]
                sent[source] += len(data)
                if source is client:
                    with self._lock:
                        self.bytes_up += len(data)
                try:
                    sink.sendall(data)
                except OSError:
                    return
                if source is cut_side and limit is not None and sent[source] >= limit:
                    if self.hold:
                        self._stall()
                    with self._lock:
                        self.cuts += 1
                    return

    def _stall(self) -> None:
        self.held.set()
        while not self._released.wait(POLL) and not self._stopping.is_set():
            pass

    def freeze(self) -> None:
        """Hold the open connections now (returns once one is held): the link is stalled, so
        neither end learns anything of what the other does next."""
        self._freezing.set()
        self.held.wait()

    def release(self) -> None:
        """End a hold: the held connection is then reset (as a link that never came back)."""
        self._released.set()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
        self._listener.close()
