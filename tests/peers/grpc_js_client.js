// A @grpc/grpc-js client of `casfs daemon` (pure JS on node's http2,
// independent of grpc core), for tests/sh/test-daemon.sh.  Loads the .proto
// files from tests/proto at run time (@grpc/proto-loader).  Prints
// PASS/FAIL lines.
//
//   node grpc_js_client.js PROTO_DIR TARGET PACKAGE EXPECT.json
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [protoDir, target, pkg, expectFile] = process.argv.slice(2);
const expect = JSON.parse(fs.readFileSync(expectFile, 'utf8'));
const label = `daemon/grpc-js/${pkg}`;
let failed = false;
function check(name, ok, why) {
  if (!ok) failed = true;
  console.log(ok ? `PASS ${label}/${name}` : `FAIL ${label}/${name}: ${why}`);
}

const files = [`${pkg}/castore/v1/rpc_blobstore.proto`, `${pkg}/castore/v1/rpc_directory.proto`,
  `${pkg}/store/v1/rpc_pathinfo.proto`, 'grpc/health/v1/health.proto'];
const def = loader.loadSync(files, { includeDirs: [protoDir], keepCase: true, longs: Number,
  defaults: true, oneofs: true });
const g = grpc.loadPackageDefinition(def);
const creds = grpc.credentials.createInsecure();
const blobs = new g[pkg].castore.v1.BlobService(target, creds);
const dirs = new g[pkg].castore.v1.DirectoryService(target, creds);
const pis = new g[pkg].store.v1.PathInfoService(target, creds);
const health = new g.grpc.health.v1.Health(target, creds);
const deadline = () => new Date(Date.now() + 30000);

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';
function nix32Decode(s, n) {
  const out = Buffer.alloc(n);
  [...s].reverse().forEach((c, i) => {
    const v = NIX32.indexOf(c), b = i * 5;
    out[b >> 3] |= (v << (b & 7)) & 0xff;
    if ((b >> 3) + 1 < n) out[(b >> 3) + 1] |= v >> (8 - (b & 7));
  });
  return out;
}
const b3 = (data) => Buffer.from(execFileSync('b3sum', ['--no-names'], { input: data })
  .toString().trim(), 'hex');
const unary = (client, m, req) => new Promise((res, rej) =>
  client[m](req, { deadline: deadline() }, (e, r) => (e ? rej(e) : res(r))));
const stream = (client, m, req) => new Promise((res, rej) => {
  const out = [];
  const s = client[m](req, { deadline: deadline() });
  s.on('data', (x) => out.push(x));
  s.on('error', rej);
  s.on('end', () => res(out));
});
const codeOf = (p) => p.then(() => 0, (e) => e.code);

async function main() {
  const h = await unary(health, 'Check', { service: '' });
  check('health', h.status === 'SERVING' || h.status === 1, JSON.stringify(h));

  const base = path.basename(expect.store_path);
  const pi = await unary(pis, 'Get', { by_output_hash: nix32Decode(base.slice(0, 32), 20) });
  const node = pi[pkg === 'snix' ? 'entry' : 'node'];
  const root = node.directory;
  const wantRoot = Buffer.from(expect.castore_digest.slice(3), 'base64');
  check('pathinfo-get', root && root.digest.equals(wantRoot) && pi.narinfo.nar_size === expect.nar_size,
    JSON.stringify(pi));

  const all = await stream(dirs, 'Get', { digest: root.digest, recursive: true });
  check('directory-get-recursive', all.length > 1 && all[0].files.some((f) => f.name.toString() === 'hello.txt'),
    `${all.length} directories`);

  const hello = all[0].files.find((f) => f.name.toString() === 'hello.txt');
  const chunks = await stream(blobs, 'Read', { digest: hello.digest });
  const got = Buffer.concat(chunks.map((c) => c.data));
  check('blob-read', got.equals(fs.readFileSync(path.join(expect.tree, 'hello.txt'))), got.toString());
  const bigDir = all.find((d) => d.files.some((f) => f.name.toString() === 'big.bin'));
  const big = bigDir.files.find((f) => f.name.toString() === 'big.bin');
  const bigChunks = await stream(blobs, 'Read', { digest: big.digest });
  const bigGot = Buffer.concat(bigChunks.map((c) => c.data));
  check('blob-read-big', bigGot.equals(fs.readFileSync(path.join(expect.tree, 'sub/big.bin'))) &&
    bigChunks.every((c) => c.data.length <= (1 << 20)), `${bigGot.length} bytes`);

  const st = await unary(blobs, 'Stat', { digest: big.digest, send_bao: true });
  check('blob-stat-bao', st.bao.slice(0, 8).toString() === 'casfsob1', st.bao.slice(0, 8).toString());
  check('blob-stat-absent', await codeOf(unary(blobs, 'Stat', { digest: Buffer.alloc(32, 7) })) ===
    grpc.status.NOT_FOUND, 'not NOT_FOUND');
  check('blob-stat-31', await codeOf(unary(blobs, 'Stat', { digest: Buffer.alloc(31, 7) })) ===
    grpc.status.INVALID_ARGUMENT, 'not INVALID_ARGUMENT');

  const nr = await unary(pis, 'CalculateNAR', { directory: { name: Buffer.alloc(0), digest: root.digest,
    size: root.size } });
  check('calculate-nar', nr.nar_size === expect.nar_bytes &&
    nr.nar_sha256.toString('hex') === expect.nar_sha256_hex, JSON.stringify(nr));

  const data = Buffer.alloc(1500000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919 + pkg.length) & 0xff;
  const put = await new Promise((res, rej) => {
    const c = blobs.Put({ deadline: deadline() }, (e, r) => (e ? rej(e) : res(r)));
    for (let off = 0; off < data.length; off += 300000) c.write({ data: data.slice(off, off + 300000) });
    c.end();
  });
  check('blob-put', put.digest.equals(b3(data)), put.digest.toString('hex'));
  const back = Buffer.concat((await stream(blobs, 'Read', { digest: put.digest })).map((c) => c.data));
  check('blob-put-read', back.equals(data), `${back.length} bytes`);

  const list = await stream(pis, 'List', {});
  check('pathinfo-list', list.length >= 1, `${list.length} entries`);
  check('directory-get-absent', await codeOf(stream(dirs, 'Get', { digest: Buffer.alloc(32, 9) })) ===
    grpc.status.NOT_FOUND, 'not NOT_FOUND');
}

main().then(() => process.exit(failed ? 1 : 0), (e) => {
  console.log(`FAIL ${label}/run: ${e && (e.stack || e)}`);
  process.exit(1);
});
