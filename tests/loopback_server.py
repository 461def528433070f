"""A real HTTP server on 127.0.0.1 serving a folder tree, for survey-builder tests (no mocks).

``serve_folder(folder)`` yields ``(base_url, requests)``: files are served at ``<base_url>/<relative path>``
(query strings are kept in the file name after ``?`` is replaced by ``__``, so a service URL such as
``/cgi/lc?ID=1&FORMAT=CSV`` maps to the file ``cgi/lc__ID=1&FORMAT=CSV``), and ``requests`` lists every path asked.
``errors`` maps file names (as above) to an HTTP status the server answers instead, to test failures.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path


def query_file_name(path_and_query: str) -> str:
    """The file name that stands for a URL path with a query string."""
    parsed = urllib.parse.urlsplit(path_and_query)
    name = urllib.parse.unquote(parsed.path.lstrip("/"))
    return f"{name}__{urllib.parse.unquote(parsed.query)}" if parsed.query else name


@contextlib.contextmanager
def serve_folder(folder: Path, errors: dict[str, int] | None = None) -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            requests.append(self.path)
            name = query_file_name(self.path)
            if name in (errors or {}):
                self.send_error(errors[name])
                return
            target = folder / name
            if not target.is_file():
                self.send_error(404, "Not Found")
                return
            body = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
