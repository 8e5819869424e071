"""Tiny real services the probe tests start: ``python services.py KIND [options]``.

Each one does exactly what a test needs (listen after a delay, answer with a status,
accept but never answer, write a pid file, send READY=1...) with nothing but the standard
library, so the tests exercise real sockets, files and processes.
"""

from __future__ import annotations

import argparse
import http.server
import os
import socket
import ssl
import sys
import time
from pathlib import Path


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    record: Path | None = None

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.record is not None:
            line = f"{self.command} {self.path} {body} {self.headers.get('X-Probe', '')}\n"
            with self.record.open("a") as file:
                file.write(line)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = _answer  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


def _serve_http(args: argparse.Namespace) -> None:
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET

    class Server(http.server.HTTPServer):
        address_family = family

    handler = type("Handler", (_Handler,), {"status": args.status, "record": args.record})
    server = Server((args.host, args.port), handler)
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def _listen_tcp(args: argparse.Namespace) -> None:
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.host, args.port))
    server.listen(64)
    # Accept and hold connections without ever answering (a hung server).
    held = []
    while True:
        connection, _ = server.accept()
        held.append(connection)


def _listen_unix(args: argparse.Namespace) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(args.path)
    server.listen(8)
    while True:
        server.accept()[0].close()


def _pid_file(args: argparse.Namespace) -> None:
    Path(args.path).write_text(str(os.getpid()))
    time.sleep(3600)


def _notify(args: argparse.Namespace) -> None:
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        for status in args.status_message:
            sock.sendto(f"STATUS={status}".encode(), address)
        if not args.never_ready:
            sock.sendto(b"READY=1", address)
    time.sleep(3600)


def main() -> None:
    """Parse the kind of service and run it until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["http", "tcp-silent", "unix", "pid", "notify"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--record", type=Path)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--path")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--status-message", action="append", default=[])
    parser.add_argument("--never-ready", action="store_true")
    parser.add_argument("--exit", type=int, default=None)
    args = parser.parse_args()
    if args.delay:
        time.sleep(args.delay)  # a service that takes a while to come up
    if args.exit is not None:
        print("giving up", flush=True)
        sys.exit(args.exit)
    {
        "http": _serve_http,
        "tcp-silent": _listen_tcp,
        "unix": _listen_unix,
        "pid": _pid_file,
        "notify": _notify,
    }[args.kind](args)


if __name__ == "__main__":
    main()
