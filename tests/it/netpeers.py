#!/usr/bin/env python3
"""Network peers for dbt-secoda's tests: a TLS front for the simulator, a CONNECT proxy, and a
server that answers very slowly.

usage:
  netpeers.py tls CERT KEY UPSTREAM_PORT [CLIENT_CA]
      TLS on a free port, relayed to 127.0.0.1:UPSTREAM_PORT; with CLIENT_CA, a client
      certificate signed by it is required (mutual TLS)
  netpeers.py connect LOG
      an HTTP CONNECT proxy on a free port; logs each CONNECT line
  netpeers.py trickle BYTES_PER_SECOND
      answers every request 200 with a failing-tests JSON body sent that slowly
  netpeers.py framing KIND
      reads each request whole and answers 200 with a failing-tests JSON body framed as KIND:
      http10 (HTTP/1.0, the body ends when the connection closes), chunked, close-after-headers
      (a Content-Length, then the connection closes), huge (70 MiB, past the client's cap)

Each prints "listening on PORT" first, then serve until killed.
"""

import socket
import ssl
import sys
import threading
import time


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(a, b):
    threading.Thread(target=pipe, args=(a, b), daemon=True).start()
    threading.Thread(target=pipe, args=(b, a), daemon=True).start()


def listen():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    print(f"listening on {server.getsockname()[1]}", flush=True)
    return server


def tls(cert, key, upstream, client_ca=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    server = listen()
    while True:
        conn, _ = server.accept()
        try:
            secure = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            continue
        relay(secure, socket.create_connection(("127.0.0.1", int(upstream))))


def connect(log):
    server = listen()
    while True:
        conn, _ = server.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                break
            head += data
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        with open(log, "a") as f:
            f.write(line + "\n")
        method, target, _ = line.split(" ", 2)
        host, port = target.rsplit(":", 1)
        if method != "CONNECT":
            conn.sendall(
                b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
            )
            conn.close()
            continue
        upstream = socket.create_connection((host, int(port)))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        relay(conn, upstream)


def trickle_one(conn, rate):
    body = b'{"failing": [], "warning": []}'
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                return
            head += data
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
        )
        for byte in body:
            conn.sendall(bytes([byte]))
            time.sleep(1 / rate)
    except OSError:
        pass
    finally:
        conn.close()


def trickle(rate):
    server = listen()
    while True:
        conn, _ = server.accept()
        threading.Thread(
            target=trickle_one, args=(conn, float(rate)), daemon=True
        ).start()


BODY = b'{"failing": [], "warning": []}'


def read_request(conn):
    """The request head and body (by Content-Length); None when the client went away."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = conn.recv(65536)
        if not data:
            return None
        head += data
    head, body = head.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        data = conn.recv(1 << 20)
        if not data:
            return None
        body += data
    return head


def answer_framed(conn, kind):
    try:
        while read_request(conn) is not None:
            if kind == "http10":
                conn.sendall(
                    b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + BODY
                )
                break
            if kind == "chunked":
                half = len(BODY) // 2
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + b"Transfer-Encoding: chunked\r\n\r\n"
                    + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                    % (half, BODY[:half], len(BODY) - half, BODY[half:])
                )
                continue
            if kind == "close-after-headers":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + b"Content-Length: %d\r\n\r\n" % len(BODY)
                )
                break
            # huge: a valid JSON document of 70 MiB.
            size = 70 << 20
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + b"Content-Length: %d\r\n\r\n" % size
            )
            padding = b" " * (1 << 20)
            conn.sendall(BODY)
            for _ in range((size - len(BODY)) // len(padding)):
                conn.sendall(padding)
            conn.sendall(b" " * ((size - len(BODY)) % len(padding)))
    except OSError:
        pass
    finally:
        conn.close()


def framing(kind):
    server = listen()
    while True:
        conn, _ = server.accept()
        threading.Thread(target=answer_framed, args=(conn, kind), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1] == "tls":
        tls(*sys.argv[2:6])
    elif sys.argv[1] == "trickle":
        trickle(sys.argv[2])
    elif sys.argv[1] == "framing":
        framing(sys.argv[2])
    else:
        connect(sys.argv[2])
