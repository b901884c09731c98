"""Posts prepared OpAMP request bodies over one keep-alive connection and prints each
answer's HTTP status on its own line: the agent side of kube_peer.rs's cases that run as
their own process (in a pod's cgroup and pid namespace, or in another network namespace).

usage: post.py unix:SOCKET_PATH|tcp:HOST:PORT BODY_FILE...   (standard library only)
"""

import socket
import sys


def connect(target):
    kind, _, where = target.partition(":")
    if kind == "unix":
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(10)
        conn.connect(where)
        return conn
    if kind == "tcp":
        host, _, port = where.rpartition(":")
        return socket.create_connection((host, int(port)), timeout=10)
    raise SystemExit(f"unknown target {target!r}: expected unix:PATH or tcp:HOST:PORT")


def read_response(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise SystemExit("connection closed before an answer")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        rest += chunk
    return status


def main():
    target, bodies = sys.argv[1], sys.argv[2:]
    conn = connect(target)
    for file in bodies:
        with open(file, "rb") as f:
            body = f.read()
        head = (
            "POST /v1/opamp HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: application/x-protobuf\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        conn.sendall(head.encode("ascii") + body)
        print(read_response(conn), flush=True)
    conn.close()


if __name__ == "__main__":
    main()
