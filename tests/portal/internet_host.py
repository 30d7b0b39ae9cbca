"""The "internet" of the netns test: a page, Google's 204 probe, a big download, an upload sink, and a bare TCP
listener on 443 (so that a refused HTTPS connection is the hub's doing, not this host's).

    python internet_host.py          (run inside the internet namespace; listens on every address, port 80)
"""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PAGE = b"<!doctype html><title>internet</title><p>the internet is here</p>"
CHUNK = b"x" * 65536


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path in ("/generate_204", "/gen_204"):
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if url.path == "/big":
            size = int(parse_qs(url.query).get("bytes", ["1000000"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            sent = 0
            while sent < size:
                piece = CHUNK[: min(len(CHUNK), size - sent)]
                self.wfile.write(piece)
                sent += len(piece)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        received = 0
        while remaining > 0:
            data = self.rfile.read(min(65536, remaining))
            if not data:
                break
            received += len(data)
            remaining -= len(data)
        body = str(received).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def tls_port_listener() -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 443))
        s.listen(16)
        while True:
            conn, _ = s.accept()
            conn.close()


if __name__ == "__main__":
    threading.Thread(target=tls_port_listener, daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", 80), Handler)
    print("ready", flush=True)
    sys.stdout.flush()
    server.serve_forever()
