"""Posts prepared OpAMP request bodies over a unix socket, one keep-alive connection, and
prints each answer's HTTP status on its own line: the agent side of kube_peer.rs's
unix-socket cases, run as a process the test places in a pod's cgroup (and pid namespace).

usage: post_over_unix.py SOCKET BODY_FILE...   (standard library only)
"""

import socket
import sys


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
    path, bodies = sys.argv[1], sys.argv[2:]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect(path)
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
