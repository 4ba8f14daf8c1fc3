#!/usr/bin/python3
"""A python grpcio server in front of a casfs daemon, for the remote store
tests: an independent gRPC server implementation (grpc core) on the wire to
casfs's client, that can lie and stall on purpose.

It relays every call byte for byte (raw messages, no stubs) to the upstream
daemon under the snix package, and serves only the packages given with
--packages (a tvix-only or snix-only daemon; other paths are UNIMPLEMENTED).

Faults (each on every matching call):
  --corrupt-read        flip the last byte of the first BlobChunk of each Read
                        (--only-blob HEX: only of that blob)
  --truncate-read       drop the last BlobChunk of each Read
  --oversized-read      answer each Read with one 5 MiB message
  --corrupt-directory   flip the last byte of each Directory sent by Get
Writes its port (tcp) or "ready" (unix) to --ready FILE once serving.
Counts calls per method in --count FILE (one line "METHOD N" each) on exit.
"""
import argparse
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--listen", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--packages", default="tvix,snix")
    ap.add_argument("--corrupt-read", action="store_true")
    ap.add_argument("--only-blob")
    ap.add_argument("--truncate-read", action="store_true")
    ap.add_argument("--oversized-read", action="store_true")
    ap.add_argument("--corrupt-directory", action="store_true")
    ap.add_argument("--stall", action="append", default=[])
    ap.add_argument("--count")
    a = ap.parse_args()

    packages = set(a.packages.split(","))
    channel = grpc.insecure_channel(a.upstream)
    counts = {}
    lock = threading.Lock()
    stop = threading.Event()

    def flip_last(msg):
        return msg[:-1] + bytes([msg[-1] ^ 1]) if msg else msg

    def relay(path, method):
        def behaviour(request_iterator, context):
            with lock:
                counts[method] = counts.get(method, 0) + 1
            if method in a.stall:
                stop.wait(3600)
                return
            upstream = channel.stream_stream(path, request_serializer=None,
                                             response_deserializer=None)
            requests = list(request_iterator)
            try:
                responses = list(upstream(iter(requests)))
            except grpc.RpcError as e:
                context.abort(e.code(), e.details() or "")
            if method == "BlobService/Read":
                digest = requests[0][2:34].hex() if requests else ""
                if a.corrupt_read and responses and a.only_blob in (None, digest):
                    responses[0] = flip_last(responses[0])
                if a.truncate_read and responses:
                    responses = responses[:-1]
                if a.oversized_read:
                    n = 5 << 20  # BlobChunk{1: 5 MiB}: tag, varint length, bytes
                    responses = [b"\x0a\x80\x80\xc0\x02" + bytes(n)]
            if method == "DirectoryService/Get" and a.corrupt_directory:
                responses = [flip_last(m) for m in responses]
            for m in responses:
                yield m
        return behaviour

    class Handler(grpc.GenericRpcHandler):
        def service(self, details):
            path = details.method  # "/pkg.family.v1.Service/Method"
            try:
                full, method_name = path[1:].split("/", 1)
                pkg, family, version, service = full.split(".", 3)
            except ValueError:
                return None
            if pkg not in packages or version != "v1":
                return None
            method = service + "/" + method_name
            up = "/snix.%s.v1.%s" % (family, method)
            return grpc.stream_stream_rpc_method_handler(
                relay(up, method), request_deserializer=None, response_serializer=None)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 8 << 20),
                                  ("grpc.max_send_message_length", 8 << 20)])
    server.add_generic_rpc_handlers((Handler(),))
    port = server.add_insecure_port(a.listen)
    server.start()
    with open(a.ready + ".tmp", "w") as f:
        f.write(str(port) if not a.listen.startswith("unix:") else "ready")
    os.rename(a.ready + ".tmp", a.ready)

    def finish(*_):
        stop.set()
        server.stop(0)
        if a.count:
            with open(a.count, "w") as f:
                for k, v in sorted(counts.items()):
                    f.write("%s %d\n" % (k, v))
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
