#!/usr/bin/env python3
"""Network peers for dbt-secoda's tests: a TLS front for the simulator, and a CONNECT proxy.

usage:
  netpeers.py tls CERT KEY UPSTREAM_PORT   TLS on a free port, relayed to 127.0.0.1:UPSTREAM_PORT
  netpeers.py connect LOG                  an HTTP CONNECT proxy on a free port; logs each CONNECT line

Both print "listening on PORT" first, then serve until killed.
"""

import socket
import ssl
import sys
import threading


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


def tls(cert, key, upstream):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
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


if __name__ == "__main__":
    if sys.argv[1] == "tls":
        tls(*sys.argv[2:5])
    else:
        connect(sys.argv[2])
