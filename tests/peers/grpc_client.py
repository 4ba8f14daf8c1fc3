#!/usr/bin/python3
"""A python grpcio client of `casfs daemon` for tests/sh/test-daemon.sh.

Stubs come from tests/proto/ (generated at test time into --stubs by
tests/sh/lib/grpc-peer.sh).  Prints PASS/FAIL/SKIP lines.

  grpc_client.py --stubs DIR --target T --package tvix|snix full EXPECT.json
      every RPC, compared against the source tree and the casfs CLI's output
  grpc_client.py ... concurrent N SECONDS EXPECT.json
      N threads doing Stat/Read/Health at once; p50/p99 latency of Stat
  grpc_client.py ... drain EXPECT.json MARKER
      a Read of the big blob kept open across the daemon's SIGTERM
  grpc_client.py ... health
      one Health/Check, exit 0 when SERVING
"""
import base64
import hashlib
import importlib.util
import json
import os
import random
import subprocess
import sys
import threading
import time

import grpc

ARGS = sys.argv[1:]


def opt(name):
    i = ARGS.index(name)
    v = ARGS[i + 1]
    del ARGS[i:i + 2]
    return v


STUBS = opt("--stubs")
TARGET = opt("--target")
PKG = opt("--package")
sys.path.insert(0, STUBS)
LABEL = "daemon/%s" % PKG
FAILED = False


def say(kind, name, why=None):
    global FAILED
    if kind == "FAIL":
        FAILED = True
    print("%s %s/%s%s" % (kind, LABEL, name, (": " + why) if why else ""), flush=True)


def check(name, cond, why=""):
    say("PASS" if cond else "FAIL", name, None if cond else why)
    return cond


def imp(mod):
    return __import__(mod, fromlist=["x"])


castore = imp("%s.castore.v1.castore_pb2" % PKG)
blobpb = imp("%s.castore.v1.rpc_blobstore_pb2" % PKG)
dirpb = imp("%s.castore.v1.rpc_directory_pb2" % PKG)
pipb = imp("%s.store.v1.pathinfo_pb2" % PKG)
rpipb = imp("%s.store.v1.rpc_pathinfo_pb2" % PKG)
# grpc/health/v1 would shadow the grpc package: load it by file name.
_spec = importlib.util.spec_from_file_location(
    "casfs_health_pb2", os.path.join(STUBS, "grpc/health/v1/health_pb2.py"))
healthpb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(healthpb)

# snix renamed the node messages; the field numbers are the same.
if PKG == "snix":
    NodeMsg, DirNode, FileNode, LinkNode = (castore.Entry, castore.DirectoryEntry,
                                            castore.FileEntry, castore.SymlinkEntry)
    PI_NODE = "entry"
else:
    NodeMsg, DirNode, FileNode, LinkNode = (castore.Node, castore.DirectoryNode,
                                            castore.FileNode, castore.SymlinkNode)
    PI_NODE = "node"

CASTORE = "/%s.castore.v1." % PKG
STORE = "/%s.store.v1." % PKG
CHUNK = 1 << 20


def b3(data):
    return bytes.fromhex(subprocess.run(["b3sum", "--no-names"], input=data, check=True,
                                        capture_output=True).stdout.decode().strip())


NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"


def nix32_decode(s, n=20):
    out = bytearray(n)
    for i, c in enumerate(reversed(s)):
        v = NIX32.index(c)
        b = i * 5
        out[b // 8] |= (v << (b % 8)) & 0xff
        if b // 8 + 1 < n:
            out[b // 8 + 1] |= v >> (8 - b % 8)
    return bytes(out)


def nix32_encode(d):
    n = (len(d) * 8 + 4) // 5
    s = []
    for i in range(n - 1, -1, -1):
        b = i * 5
        c = d[b // 8] >> (b % 8)
        if b // 8 + 1 < len(d):
            c |= d[b // 8 + 1] << (8 - b % 8)
        s.append(NIX32[c & 0x1f])
    return "".join(s)


class Client:
    def __init__(self, target=TARGET, options=None):
        self.ch = grpc.insecure_channel(target, options=options or [])
        ident = lambda b: b
        def uu(path, req, resp):
            return self.ch.unary_unary(path, request_serializer=req.SerializeToString,
                                       response_deserializer=resp.FromString)
        self.stat = uu(CASTORE + "BlobService/Stat", blobpb.StatBlobRequest, blobpb.StatBlobResponse)
        self.read = self.ch.unary_stream(CASTORE + "BlobService/Read",
                                         request_serializer=blobpb.ReadBlobRequest.SerializeToString,
                                         response_deserializer=blobpb.BlobChunk.FromString)
        self.bput = self.ch.stream_unary(CASTORE + "BlobService/Put",
                                         request_serializer=blobpb.BlobChunk.SerializeToString,
                                         response_deserializer=blobpb.PutBlobResponse.FromString)
        self.dget = self.ch.unary_stream(CASTORE + "DirectoryService/Get",
                                         request_serializer=dirpb.GetDirectoryRequest.SerializeToString,
                                         response_deserializer=castore.Directory.FromString)
        self.dput = self.ch.stream_unary(CASTORE + "DirectoryService/Put",
                                         request_serializer=castore.Directory.SerializeToString,
                                         response_deserializer=dirpb.PutDirectoryResponse.FromString)
        self.pget = uu(STORE + "PathInfoService/Get", rpipb.GetPathInfoRequest, pipb.PathInfo)
        self.pput = uu(STORE + "PathInfoService/Put", pipb.PathInfo, pipb.PathInfo)
        self.nar = uu(STORE + "PathInfoService/CalculateNAR", NodeMsg, rpipb.CalculateNARResponse)
        self.plist = self.ch.unary_stream(STORE + "PathInfoService/List",
                                          request_serializer=rpipb.ListPathInfoRequest.SerializeToString,
                                          response_deserializer=pipb.PathInfo.FromString)
        self.health = self.ch.unary_unary("/grpc.health.v1.Health/Check",
                                          request_serializer=healthpb.HealthCheckRequest.SerializeToString,
                                          response_deserializer=healthpb.HealthCheckResponse.FromString)
        self.raw = lambda path: self.ch.unary_unary(path, request_serializer=ident,
                                                    response_deserializer=ident)
        self.raw_stream = lambda path: self.ch.stream_unary(path, request_serializer=ident,
                                                            response_deserializer=ident)

    def read_all(self, digest, timeout=60):
        chunks = [c.data for c in self.read(blobpb.ReadBlobRequest(digest=digest), timeout=timeout)]
        return chunks


def code_of(fn):
    """The status code a call ends with (OK if it returns)."""
    try:
        r = fn()
        if hasattr(r, "__iter__") and not isinstance(r, (bytes, str)):
            list(r)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def expect_code(name, fn, want):
    got, details = code_of(fn)
    check(name, got == want, "got %s (%s), want %s" % (got, details, want))


def walk_tree(path):
    """name -> ('d', {...}) | ('f', bytes, exec) | ('l', target)."""
    out = {}
    for name in os.listdir(path):
        p = os.path.join(path, name)
        if os.path.islink(p):
            out[name] = ("l", os.readlink(p))
        elif os.path.isdir(p):
            out[name] = ("d", walk_tree(p))
        else:
            with open(p, "rb") as f:
                out[name] = ("f", f.read(), os.access(p, os.X_OK))
    return out


def full(expect):
    c = Client()
    sp = expect["store_path"]
    base = os.path.basename(sp)
    digest20 = nix32_decode(base[:32])

    # Health
    r = c.health(healthpb.HealthCheckRequest(service=""), timeout=10)
    check("health", r.status == healthpb.HealthCheckResponse.SERVING, str(r))
    r = c.health(healthpb.HealthCheckRequest(service="%s.castore.v1.BlobService" % PKG), timeout=10)
    check("health-service", r.status == healthpb.HealthCheckResponse.SERVING, str(r))
    expect_code("health-unknown",
                lambda: c.health(healthpb.HealthCheckRequest(service="no.Such"), timeout=10),
                grpc.StatusCode.NOT_FOUND)

    # PathInfo Get vs casfs path-info --json
    pi = c.pget(rpipb.GetPathInfoRequest(by_output_hash=digest20), timeout=10)
    node = getattr(pi, PI_NODE)
    root = node.directory
    want_root = base64.b64decode(expect["castore_digest"][3:])
    want_nar = base64.b64decode(expect["nar_hash"][7:])
    check("pathinfo-get", root.name == base.encode() and root.digest == want_root and
          pi.narinfo.nar_size == expect["nar_size"] and pi.narinfo.nar_sha256 == want_nar,
          "got %s" % pi)
    expect_code("pathinfo-get-absent",
                lambda: c.pget(rpipb.GetPathInfoRequest(by_output_hash=b"\0" * 20), timeout=10),
                grpc.StatusCode.NOT_FOUND)
    expect_code("pathinfo-get-19", lambda: c.pget(rpipb.GetPathInfoRequest(by_output_hash=b"\1" * 19),
                                                  timeout=10), grpc.StatusCode.INVALID_ARGUMENT)
    expect_code("pathinfo-get-unset", lambda: c.pget(rpipb.GetPathInfoRequest(), timeout=10),
                grpc.StatusCode.UNIMPLEMENTED)

    # Directory Get, one and recursive, against the source tree
    d = list(c.dget(dirpb.GetDirectoryRequest(digest=root.digest), timeout=10))
    check("directory-get", len(d) == 1 and b3(d[0].SerializeToString()) == root.digest,
          "%d directories" % len(d))
    dirs = list(c.dget(dirpb.GetDirectoryRequest(digest=root.digest, recursive=True), timeout=30))
    digests = [b3(x.SerializeToString()) for x in dirs]
    ok, why = True, ""
    if not digests or digests[0] != root.digest:
        ok, why = False, "root not first"
    if len(set(digests)) != len(digests):
        ok, why = False, "a directory sent twice"
    announced = {root.digest}
    for dg, x in zip(digests, dirs):
        if dg not in announced:
            ok, why = False, "a directory before its parent"
        for sub in x.directories:
            announced.add(sub.digest)
    if announced != set(digests):
        ok, why = False, "incomplete: %d referenced, %d sent" % (len(announced), len(digests))
    check("directory-get-recursive-order", ok, why)
    by_digest = dict(zip(digests, dirs))

    # The tree as the daemon has it, blob bytes by Read, against the files.
    files = []
    def compare(dig, tree, path):
        x = by_digest.get(dig)
        if x is None:
            return "missing directory for %s" % path
        names = {}
        for e in x.directories:
            names[e.name.decode()] = ("d", e)
        for e in x.files:
            names[e.name.decode()] = ("f", e)
        for e in x.symlinks:
            names[e.name.decode()] = ("l", e)
        if set(names) != set(tree):
            return "%s: names %s vs %s" % (path, sorted(names), sorted(tree))
        for n, (kind, e) in names.items():
            t = tree[n]
            if kind != t[0]:
                return "%s/%s: kind" % (path, n)
            if kind == "d":
                w = compare(e.digest, t[1], path + "/" + n)
                if w:
                    return w
            elif kind == "f":
                if e.size != len(t[1]) or e.executable != t[2]:
                    return "%s/%s: size/executable" % (path, n)
                files.append((path + "/" + n, e.digest, t[1]))
            elif e.target.decode() != t[1]:
                return "%s/%s: target" % (path, n)
        return None
    why = compare(root.digest, walk_tree(expect["tree"]), "")
    check("directory-tree-equal", why is None, why or "")
    bad = []
    max_chunk = 0
    for path, dig, content in files:
        chunks = c.read_all(dig)
        max_chunk = max([max_chunk] + [len(x) for x in chunks])
        if b"".join(chunks) != content or b3(content) != dig:
            bad.append(path)
    check("blob-read-equal", files and not bad, "differ: %s" % bad)
    check("blob-read-chunks", max_chunk <= CHUNK and (max_chunk == CHUNK) == any(
        len(x[2]) >= CHUNK for x in files), "largest chunk %d" % max_chunk)
    big = max(files, key=lambda f: len(f[2]))
    small = next((f for f in files if f[0] == "/hello.txt"), None) or \
        min((f for f in files if f[2]), key=lambda f: len(f[2]))
    s = c.stat(blobpb.StatBlobRequest(digest=big[1], send_bao=True), timeout=10)
    check("blob-stat-bao", s.bao[:8] == b"casfsob1" and
          int.from_bytes(s.bao[16:24], "little") == len(big[2]), "bao %r..." % s.bao[:24])
    check("blob-stat-chunks", [(x.digest, x.size) for x in s.chunks] == [(big[1], len(big[2]))],
          "chunks %s" % s.chunks)
    s = c.stat(blobpb.StatBlobRequest(digest=small[1], send_bao=True), timeout=10)
    check("blob-stat-small", s.bao == b"", "bao %r" % s.bao[:24])
    expect_code("blob-stat-absent", lambda: c.stat(blobpb.StatBlobRequest(digest=b"\7" * 32), timeout=10),
                grpc.StatusCode.NOT_FOUND)
    expect_code("blob-stat-31", lambda: c.stat(blobpb.StatBlobRequest(digest=b"\7" * 31), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)
    expect_code("blob-read-absent", lambda: c.read(blobpb.ReadBlobRequest(digest=b"\7" * 32), timeout=10),
                grpc.StatusCode.NOT_FOUND)
    expect_code("blob-read-31", lambda: c.read(blobpb.ReadBlobRequest(digest=b"\7" * 31), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)
    expect_code("directory-get-absent",
                lambda: c.dget(dirpb.GetDirectoryRequest(digest=b"\7" * 32), timeout=10),
                grpc.StatusCode.NOT_FOUND)
    got = list(c.dget(dirpb.GetDirectoryRequest(digest=b"\7" * 32, recursive=True), timeout=10))
    check("directory-get-recursive-absent", got == [], "%d directories" % len(got))
    expect_code("directory-get-31",
                lambda: c.dget(dirpb.GetDirectoryRequest(digest=b"\7" * 31), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)
    expect_code("directory-get-unset", lambda: c.dget(dirpb.GetDirectoryRequest(), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)

    # CalculateNAR of the root node with an empty name vs casfs nar | sha256sum
    n = NodeMsg(directory=DirNode(name=b"", digest=root.digest, size=root.size))
    r = c.nar(n, timeout=60)
    want_sha = bytes.fromhex(expect["nar_sha256_hex"])
    check("calculate-nar", r.nar_size == expect["nar_bytes"] and r.nar_sha256 == want_sha,
          "got %d %s, want %d %s" % (r.nar_size, r.nar_sha256.hex(), expect["nar_bytes"],
                                     want_sha.hex()))
    n = NodeMsg(file=FileNode(name=b"", digest=small[1], size=len(small[2])))
    r = c.nar(n, timeout=60)
    check("calculate-nar-file", r.nar_sha256 == bytes.fromhex(expect["small_nar_sha256_hex"]) if
          "small_nar_sha256_hex" in expect else r.nar_size > len(small[2]), "got %s" % r)
    expect_code("calculate-nar-absent",
                lambda: c.nar(NodeMsg(file=FileNode(name=b"", digest=b"\7" * 32, size=3)), timeout=10),
                grpc.StatusCode.NOT_FOUND)

    # List
    entries = list(c.plist(rpipb.ListPathInfoRequest(), timeout=30))
    names = [getattr(e, PI_NODE).directory.name or getattr(e, PI_NODE).file.name or
             getattr(e, PI_NODE).symlink.name for e in entries]
    check("pathinfo-list", base.encode() in names, "names %s" % names)

    # Blob Put in odd pieces, then read back
    rnd = random.Random(expect.get("seed", 1))
    data = bytes(rnd.getrandbits(8) for _ in range(300000)) * 8
    pieces = []
    off = 0
    while off < len(data):
        k = rnd.choice([0, 1, 17, 4096, 65536, 1 << 20])
        pieces.append(data[off:off + k])
        off += k
    r = c.bput(iter(blobpb.BlobChunk(data=p) for p in pieces), timeout=60)
    check("blob-put", r.digest == b3(data), "digest %s" % r.digest.hex())
    check("blob-put-read", b"".join(c.read_all(r.digest)) == data, "bytes differ")
    r2 = c.bput(iter([blobpb.BlobChunk(data=big[2])]), timeout=60)
    check("blob-put-existing", r2.digest == big[1], "digest %s" % r2.digest.hex())
    r3 = c.bput(iter([]), timeout=10)
    check("blob-put-empty", r3.digest == b3(b""), r3.digest.hex())

    # Directory Put: a closure, leaves first; one that uses a child the
    # daemon has; one that references an unknown directory.
    leaf = castore.Directory(files=[FileNode(name=b"data", digest=r.digest, size=len(data))])
    leaf_d = b3(leaf.SerializeToString())
    top = castore.Directory(directories=[DirNode(name=b"leaf", digest=leaf_d, size=1)],
                            symlinks=[LinkNode(name=b"z", target=b"leaf/data")])
    top_d = b3(top.SerializeToString())
    p = c.dput(iter([leaf, top]), timeout=10)
    check("directory-put", p.root_digest == top_d, p.root_digest.hex())
    got = list(c.dget(dirpb.GetDirectoryRequest(digest=top_d, recursive=True), timeout=10))
    check("directory-put-get", [b3(x.SerializeToString()) for x in got] == [top_d, leaf_d],
          "%d directories" % len(got))
    uses = castore.Directory(directories=[DirNode(name=b"old", digest=root.digest, size=root.size)])
    p = c.dput(iter([uses]), timeout=10)
    check("directory-put-known-child", p.root_digest == b3(uses.SerializeToString()), "")
    dup = c.dput(iter([leaf, leaf, top]), timeout=10)
    check("directory-put-duplicates", dup.root_digest == top_d, "")
    dangling = castore.Directory(directories=[DirNode(name=b"x", digest=b"\5" * 32, size=1)])
    expect_code("directory-put-unknown-child", lambda: c.dput(iter([dangling]), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)
    wrongsize = castore.Directory(directories=[DirNode(name=b"leaf", digest=leaf_d, size=7)])
    expect_code("directory-put-wrong-size", lambda: c.dput(iter([leaf, wrongsize]), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)
    expect_code("directory-put-garbage",
                lambda: c.raw_stream(CASTORE + "DirectoryService/Put")(iter([b"\xff\xff\xff"]), timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)

    # PathInfo Put: the same PathInfo again; a new path over the put tree;
    # missing references; garbage
    back = c.pput(pi, timeout=30)
    check("pathinfo-put-same", back == pi, "returned %s" % back)
    nr = c.nar(NodeMsg(directory=DirNode(name=b"", digest=top_d, size=3)), timeout=60)
    new_digest = hashlib.sha256(b"casfs-test" + top_d).digest()[:20]
    new_name = nix32_encode(new_digest) + "-daemon-put-" + PKG
    npi = pipb.PathInfo(narinfo=pipb.NARInfo(nar_size=nr.nar_size, nar_sha256=nr.nar_sha256))
    getattr(npi, PI_NODE).directory.CopyFrom(DirNode(name=new_name.encode(), digest=top_d, size=3))
    back = c.pput(npi, timeout=30)
    check("pathinfo-put-new", back == npi, "returned %s" % back)
    got = c.pget(rpipb.GetPathInfoRequest(by_output_hash=new_digest), timeout=10)
    check("pathinfo-put-get", got == npi, "got %s" % got)
    bad = pipb.PathInfo()
    bad.CopyFrom(npi)
    bad.references.append(b"\3" * 20)
    bad.narinfo.reference_names.append(nix32_encode(b"\3" * 20) + "-missing")
    expect_code("pathinfo-put-missing-reference", lambda: c.pput(bad, timeout=10),
                grpc.StatusCode.FAILED_PRECONDITION)
    expect_code("pathinfo-put-garbage",
                lambda: c.raw(STORE + "PathInfoService/Put")(b"\x0a\x05\x01", timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)
    nonode = pipb.PathInfo(narinfo=npi.narinfo)
    expect_code("pathinfo-put-invalid", lambda: c.pput(nonode, timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)

    # Wire-level errors
    expect_code("unknown-method", lambda: c.raw(CASTORE + "BlobService/Nope")(b"", timeout=10),
                grpc.StatusCode.UNIMPLEMENTED)
    expect_code("malformed-protobuf",
                lambda: c.raw(CASTORE + "BlobService/Stat")(b"\x0a\xff\xff\xff", timeout=10),
                grpc.StatusCode.INVALID_ARGUMENT)
    huge = blobpb.BlobChunk(data=b"x" * (5 << 20)).SerializeToString()
    expect_code("oversized-message",
                lambda: c.raw_stream(CASTORE + "BlobService/Put")(iter([huge]), timeout=30),
                grpc.StatusCode.RESOURCE_EXHAUSTED)
    r = c.health(healthpb.HealthCheckRequest(service=""), timeout=10)
    check("serves-after-oversized", r.status == healthpb.HealthCheckResponse.SERVING, "")

    def slow():
        yield blobpb.BlobChunk(data=b"a")
        time.sleep(2)
        yield blobpb.BlobChunk(data=b"b")
    expect_code("deadline", lambda: c.bput(slow(), timeout=0.5), grpc.StatusCode.DEADLINE_EXCEEDED)
    r = c.health(healthpb.HealthCheckRequest(service=""), timeout=10)
    check("serves-after-deadline", r.status == healthpb.HealthCheckResponse.SERVING, "")


def concurrent(n, seconds, expect):
    """n threads, each with its own channel, for `seconds`."""
    c0 = Client()
    base = os.path.basename(expect["store_path"])
    pi = c0.pget(rpipb.GetPathInfoRequest(by_output_hash=nix32_decode(base[:32])), timeout=10)
    root = getattr(pi, PI_NODE).directory.digest
    d = list(c0.dget(dirpb.GetDirectoryRequest(digest=root, recursive=True), timeout=30))
    blobs = [(f.digest, f.size) for x in d for f in x.files]
    lat, errors = [], []
    lock = threading.Lock()
    stop = time.time() + seconds
    barrier = threading.Barrier(n)

    def worker(i):
        cl = Client()
        rnd = random.Random(i)
        barrier.wait()
        mine = []
        try:
            while time.time() < stop:
                dig, size = rnd.choice(blobs)
                t = time.perf_counter()
                cl.stat(blobpb.StatBlobRequest(digest=dig), timeout=30)
                mine.append(time.perf_counter() - t)
                if size < (256 << 10) or rnd.random() < 0.05:
                    got = b"".join(cl.read_all(dig))
                    if len(got) != size:
                        raise RuntimeError("short read of %s" % dig.hex())
                if rnd.random() < 0.2:
                    cl.health(healthpb.HealthCheckRequest(service=""), timeout=30)
                if rnd.random() < 0.05:
                    list(cl.dget(dirpb.GetDirectoryRequest(digest=root, recursive=True), timeout=30))
        except Exception as e:  # noqa
            with lock:
                errors.append("thread %d: %r" % (i, e))
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat.sort()
    if lat:
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        print("# %d clients: %d Stat calls, p50 %.2f ms, p99 %.2f ms" % (n, len(lat), p50, p99))
    check("concurrent-%d" % n, not errors and lat, "; ".join(errors[:3]) or "no calls")


def drain(expect, marker):
    c = Client()
    dig = bytes.fromhex(expect["drain_blob_hex"])
    it = c.read(blobpb.ReadBlobRequest(digest=dig), timeout=60)
    first = next(it)
    with open(marker, "w") as f:
        f.write("started\n")
    # the shell sends SIGTERM now and tells us by removing the marker
    t = time.time() + 20
    while os.path.exists(marker) and time.time() < t:
        time.sleep(0.02)
    time.sleep(0.3)
    try:
        rest = b"".join(x.data for x in it)
        got = first.data + rest
        check("drain-in-flight", b3(got) == dig, "%d bytes, digest differs" % len(got))
    except grpc.RpcError as e:
        check("drain-in-flight", False, "%s %s" % (e.code(), e.details()))
    code, _ = code_of(lambda: Client().health(healthpb.HealthCheckRequest(service=""), timeout=3))
    check("drain-refuses-new", code != grpc.StatusCode.OK, "a new call after SIGTERM succeeded")


def main():
    mode = ARGS[0]
    if mode == "health":
        try:
            r = Client().health(healthpb.HealthCheckRequest(service=""), timeout=5)
            sys.exit(0 if r.status == healthpb.HealthCheckResponse.SERVING else 1)
        except grpc.RpcError:
            sys.exit(1)
    with open(ARGS[-1] if mode != "drain" else ARGS[1]) as f:
        expect = json.load(f)
    if mode == "full":
        full(expect)
    elif mode == "concurrent":
        concurrent(int(ARGS[1]), float(ARGS[2]), expect)
    elif mode == "drain":
        drain(expect, ARGS[2])
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
