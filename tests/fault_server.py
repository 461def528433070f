"""An in-memory file archive served over HTTP on 127.0.0.1, with faults injected per path (no mocks).

The server answers with ``Content-Length``, ``Accept-Ranges`` and real ``Range`` handling (206 / 416), and per path
can answer an HTTP status for the first K requests, drop the connection after N body bytes, stall the body, drip it
one byte at a time, ignore ranges or answer them from the wrong offset. Every request is logged with its ``Range`` header. The ``archive``
fixture (in ``conftest.py``) yields an :class:`Archive` whose ``files`` the test fills.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Fault:
    """Misbehaviour of the server for one path, applied to its first ``times`` requests (None: to all of them)."""

    status: int | None = None  # answer this HTTP status instead of the file
    drop_after: int | None = None  # announce the full Content-Length, send this many body bytes, close the socket
    stall_after: int | None = None  # send this many body bytes, then go silent for ``stall_seconds``
    stall_seconds: float = 0.0
    drip_seconds: float | None = None  # send the body one byte at a time, this many seconds apart
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    wrong_range_start: bool = False  # answer a Range request with 206 for the whole file (Content-Range from 0)
    times: int | None = None


@dataclass
class Archive:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Fault | list[Fault]] = field(default_factory=dict)  # a list: one fault per request, in order
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    def url(self, path: str) -> str:
        return self.base_url + path

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if p == path)

    def ranges(self, path: str) -> list[str | None]:
        with self.lock:
            return [r for p, r in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: _ArchiveServer

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:
        archive = self.server.archive
        range_header = self.headers.get("Range")
        with archive.lock:
            index = sum(1 for p, _ in archive.requests if p == self.path)
            archive.requests.append((self.path, range_header))
        fault = archive.faults.get(self.path)
        if isinstance(fault, list):
            fault = fault[index] if index < len(fault) else None
        elif fault is not None and fault.times is not None and index >= fault.times:
            fault = None
        fault = fault or Fault()

        if fault.status is not None:
            self._send_empty(fault.status)
            return
        data = archive.files.get(self.path)
        if data is None:
            self._send_empty(404)
            return

        status, start, end = 200, 0, len(data)
        if range_header and not fault.ignore_range:
            first, _, last = range_header.removeprefix("bytes=").partition("-")
            start = int(first)
            end = min(int(last) + 1, len(data)) if last else len(data)
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
            if fault.wrong_range_start:
                start = 0
        body = data[start:end]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()

        if fault.drop_after is not None:
            self.wfile.write(body[: fault.drop_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if fault.drip_seconds is not None:
            for index in range(len(body)):
                try:
                    self.wfile.write(body[index : index + 1])
                    self.wfile.flush()
                except OSError:  # the client gave up
                    break
                time.sleep(fault.drip_seconds)
            self.close_connection = True
            return
        if fault.stall_after is not None:
            self.wfile.write(body[: fault.stall_after])
            self.wfile.flush()
            time.sleep(fault.stall_seconds)
            self.close_connection = True
            return
        self.wfile.write(body)

    def _send_empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _ArchiveServer(ThreadingHTTPServer):
    daemon_threads = True
    archive: Archive


@pytest.fixture
def archive(monkeypatch: pytest.MonkeyPatch):
    # Never route the loopback through a proxy configured in the environment.
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    server = _ArchiveServer(("127.0.0.1", 0), _Handler)
    server.archive = Archive(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.archive
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
