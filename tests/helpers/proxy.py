"""A TCP proxy in front of a real broker that can turn into a black hole.

`silence()` models what a collector meets behind a proxy or load balancer whose Redis is
gone (or on a port another service took over): the open connections end, and new ones are
accepted at the TCP level but never answered. A client without socket timeouts then waits
forever in its connect handshake, which a stopped redis-server (connection refused) never
shows.
"""
from __future__ import annotations

import socket
import threading


class SilenceableProxy:
    """Forwards 127.0.0.1:`port` to `target` until `silence()`; `close()` ends every thread."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self._silent = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept)

    def silence(self) -> None:
        """End the forwarded connections; accept new ones and never answer them."""
        self._silent.set()
        self._shut_all()

    def resume(self) -> None:
        """Forward new connections again (the silent ones stay unanswered)."""
        self._silent.clear()

    def close(self) -> None:
        self._closed.set()
        self._shut_all()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name="test-proxy", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _shut_all(self) -> None:
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._keep(client)
            if self._silent.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(self.target)
            self._keep(upstream)
            self._spawn(self._pipe, client, upstream)
            self._spawn(self._pipe, upstream, client)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
