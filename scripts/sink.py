#!/usr/bin/env python3
"""A neutral HTTP sink for upload benchmarks: it reads request bodies and throws them away.

It does no parsing beyond the request head, so the server side costs the same whoever uploads:
answers `100 Continue` when asked (curl asks for large bodies), reads Content-Length bytes (or a
chunked body) into one reused buffer, and answers 200 with a small JSON body
(`{"failing": [], "warning": []}` so a GET of failing_tests/ parses too). Keep-alive is honoured.

usage: sink.py [--port 0]   (prints "listening on http://127.0.0.1:PORT" first)
"""

import argparse
import socket
import sys
import threading

BODY = b'{"failing": [], "warning": []}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
BUF = 1 << 20


def read_head(conn, pending):
    while b"\r\n\r\n" not in pending:
        data = conn.recv(65536)
        if not data:
            return None, b""
        pending += data
    head, rest = pending.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def drain(conn, already, length, view):
    remaining = length - len(already)
    while remaining > 0:
        n = conn.recv_into(view, min(remaining, BUF))
        if n == 0:
            raise ConnectionError("body cut short")
        remaining -= n


def drain_chunked(conn, pending):
    while True:
        while b"\r\n" not in pending:
            pending += conn.recv(65536)
        line, pending = pending.split(b"\r\n", 1)
        size = int(line.split(b";")[0], 16)
        while len(pending) < size + 2:
            data = conn.recv(max(65536, size + 2 - len(pending)))
            if not data:
                raise ConnectionError("body cut short")
            pending += data
        pending = pending[size + 2 :]
        if size == 0:
            return pending


def serve(conn):
    view = memoryview(bytearray(BUF))
    pending = b""
    try:
        while True:
            head, pending = read_head(conn, pending)
            if head is None:
                return
            headers = {}
            for line in head.split("\r\n")[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            if headers.get("expect", "").lower() == "100-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if headers.get("transfer-encoding", "").lower() == "chunked":
                pending = drain_chunked(conn, pending)
            else:
                length = int(headers.get("content-length", "0"))
                if len(pending) >= length:
                    pending = pending[length:]
                else:
                    drain(conn, pending, length, view)
                    pending = b""
            conn.sendall(RESPONSE)
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(64)
    print(f"listening on http://127.0.0.1:{server.getsockname()[1]}", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
