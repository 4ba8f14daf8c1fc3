#!/usr/bin/python3
"""Bad bytes on a gRPC daemon's socket: each case opens a connection, sends
its bytes, and reads until the daemon closes it (bounded).  Prints one
line per case: "<case> closed" or "<case> open" (still open after the
bound), for tests/sh/test-daemon.sh.

  h2_garbage.py unix:/PATH|HOST:PORT CASE...
"""
import os
import random
import socket
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


SETTINGS = frame(4, 0, 0, b"")
CASES = {
    "random": random.Random(5).randbytes(4096),
    "http1": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad-frame": PREFACE + SETTINGS + frame(0, 0, 0, b"data on stream zero"),
    "bad-hpack": PREFACE + SETTINGS + frame(1, 5, 1, b"\xff\xff\xff\xff\xff\xff"),
    "huge-frame": PREFACE + SETTINGS + struct.pack(">I", 0xffffff)[1:] + b"\0\0\0\0\0\1",
    "truncated": PREFACE + SETTINGS + frame(1, 4, 1, b"\x82\x86")[:7],
    "window-overflow": PREFACE + SETTINGS + frame(8, 0, 0, struct.pack(">I", 0x7fffffff)) * 2,
    "idle": b"",
}


def connect(target):
    if target.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(target[5:])
    else:
        host, port = target.rsplit(":", 1)
        s = socket.create_connection((host.strip("[]"), int(port)))
    return s


def run(target, case, bound):
    s = connect(target)
    s.settimeout(0.5)
    try:
        s.sendall(CASES[case])
    except OSError:
        return "closed"
    end = time.time() + bound
    while time.time() < end:
        try:
            if not s.recv(65536):
                return "closed"
        except socket.timeout:
            continue
        except OSError:
            return "closed"
    return "open"


def main():
    target = sys.argv[1]
    bound = float(os.environ.get("H2_GARBAGE_BOUND", "10"))
    for case in sys.argv[2:]:
        print(case, run(target, case, bound), flush=True)


main()
