"""Socket-level helpers: a misbehaving upstream, a raw client, a gateway process.

The upstream reads requests with h11 and answers with raw bytes chosen by the request
path, so each test can make it misbehave in one precise way. The client writes raw
bytes and reads everything the gateway sends until it closes, so an extra byte after a
response cannot hide behind a well-behaved client library.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import h11
from gateway_support import free_port, wait_port

Writer = asyncio.StreamWriter
Behaviour = Callable[[h11.Request, bytes, "Conn"], Awaitable[None]]


@dataclass
class Conn:
    """One upstream connection, as the behaviours see it."""

    index: int
    reader: asyncio.StreamReader
    writer: Writer
    served: int = 0

    def write(self, data: bytes) -> None:
        self.writer.write(data)


@dataclass
class ScriptedUpstream:
    """An upstream whose answer to each path is a coroutine in ``behaviours``.

    It runs its own event loop in a thread (``start``/``stop``), so plain tests, a
    gateway process and this upstream all run at once.
    """

    behaviours: dict[str, Behaviour]
    requests: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)
    """(method, path, headers, connection index) of every request received."""
    connections: int = 0
    port: int = 0
    closed_connections: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _, _ in self.requests if (m, p) == (method, path))

    async def _serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        self.connections += 1
        conn = Conn(self.connections, reader, writer)
        parser = h11.Connection(h11.SERVER)
        try:
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        return
                    parser.receive_data(data)
                    continue
                if not isinstance(event, h11.Request):
                    continue
                body = b""
                while True:
                    more = parser.next_event()
                    if more is h11.NEED_DATA:
                        parser.receive_data(await reader.read(65536))
                        continue
                    if isinstance(more, h11.Data):
                        body += bytes(more.data)
                    if isinstance(more, h11.EndOfMessage):
                        break
                path = event.target.decode().split("?")[0]
                headers = {k.decode(): v.decode() for k, v in event.headers}
                self.requests.append((event.method.decode(), path, headers, conn.index))
                behaviour = self.behaviours.get(path, _not_found)
                await behaviour(event, body, conn)
                conn.served += 1
                await writer.drain()
                if writer.is_closing():
                    return
                # our raw writes bypassed h11: a fresh parser for the next request
                parser = h11.Connection(h11.SERVER)
        except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            self.closed_connections += 1

    def start(self) -> ScriptedUpstream:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await server.serve_forever()

        def run() -> None:
            try:
                asyncio.run(main())
            except asyncio.CancelledError:
                pass

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            for task in asyncio.all_tasks(self._loop):
                self._loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(10)


async def _not_found(request: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    trailing: bytes
    """Bytes the gateway sent after the end of the response (must be none)."""

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def raw_exchange(port: int, request: bytes, *, timeout: float = 10.0) -> RawResponse:
    """Send ``request`` as is; read until the gateway closes; parse one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse_response(request, data)


def parse_response(request: bytes, data: bytes) -> RawResponse:
    """One response out of ``data`` (h11), and whatever followed it."""
    client = h11.Connection(h11.CLIENT)
    method = request.split(b" ", 1)[0].decode()
    client.send(h11.Request(method=method, target="/", headers=[("host", "gw")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    client.receive_data(b"")
    status, headers, body = 0, [], b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            status, headers = event.status_code, list(event.headers.raw_items())
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed) or event is h11.NEED_DATA:
            break
    return RawResponse(status, [(k.lower(), v) for k, v in headers], body, client.trailing_data[0])


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    """A raw HTTP/1.1 request asking the gateway to close after answering."""
    lines = [f"{method} {path} HTTP/1.1", "Host: gw", "Connection: close", *headers]
    if body and not any(h.lower().startswith(("content-length", "transfer-")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class GatewayProcess:
    """``python -m tracseq_kit.gateway`` with ``--server`` uvicorn or granian."""

    def __init__(self, config: str, tmp: Path, server: str) -> None:
        path = tmp / f"gateway-{server}.toml"
        path.write_text(config)
        self.log = tmp / f"gateway-{server}.log"
        self.port = free_port()
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tracseq_kit.gateway",
                "--config",
                str(path),
                "--port",
                str(self.port),
                "--server",
                server,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_port(self.port)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()
        return self.log.read_text(errors="replace")
