// A @grpc/grpc-js server (pure JS on node's http2, independent of grpc core
// and of casfs) in front of a casfs daemon, for tests/sh/test-remote-store.sh:
// casfs's client reads from it.  Messages are relayed as raw bytes to the
// upstream daemon under the snix package; it serves the packages given.
//
//   node grpc_js_server.js UPSTREAM LISTEN READY_FILE PACKAGES [--corrupt-blob HEX]
//
// UPSTREAM and LISTEN are grpc-js targets (unix:///PATH).  With
// --corrupt-blob, the first BlobChunk of each Read of that blob (hex BLAKE3)
// has its last byte flipped.  READY_FILE is written once it serves.
'use strict';
const fs = require('fs');
const grpc = require('@grpc/grpc-js');

const [upstream, listen, readyFile, packages, flag, corruptHex] = process.argv.slice(2);
const corrupt = flag === '--corrupt-blob' ? corruptHex : null;
const raw = (x) => x;
const up = new grpc.Client(upstream, grpc.credentials.createInsecure(),
  { 'grpc.max_receive_message_length': 8 << 20 });

const methods = {
  'castore.v1.BlobService': { Stat: 'unary', Read: 'server', Put: 'client' },
  'castore.v1.DirectoryService': { Get: 'server', Put: 'client' },
  'store.v1.PathInfoService': { Get: 'unary', Put: 'unary', CalculateNAR: 'unary', List: 'server' },
};

function flipLast(b) {
  const c = Buffer.from(b);
  if (c.length) c[c.length - 1] ^= 1;
  return c;
}

function relay(service, method, kind) {
  const path = `/snix.${service}/${method}`;
  const done = (cb) => (err, resp) => (err ? cb({ code: err.code, details: err.details }) : cb(null, resp));
  if (kind === 'unary')
    return (call, cb) => up.makeUnaryRequest(path, raw, raw, call.request, done(cb));
  if (kind === 'client')
    return (call, cb) => {
      const out = up.makeClientStreamRequest(path, raw, raw, done(cb));
      call.on('data', (m) => out.write(m));
      call.on('end', () => out.end());
    };
  return (call) => {
    const digest = call.request.subarray(2, 34).toString('hex');
    let first = true;
    const inner = up.makeServerStreamRequest(path, raw, raw, call.request);
    inner.on('data', (m) => {
      if (method === 'Read' && service.endsWith('BlobService') && first && digest === corrupt) m = flipLast(m);
      first = false;
      call.write(m);
    });
    inner.on('error', (e) => call.destroy({ code: e.code, details: e.details }));
    inner.on('end', () => call.end());
  };
}

const server = new grpc.Server({ 'grpc.max_receive_message_length': 8 << 20 });
for (const pkg of packages.split(',')) {
  for (const [service, ms] of Object.entries(methods)) {
    const def = {}, impl = {};
    for (const [method, kind] of Object.entries(ms)) {
      def[method] = {
        path: `/${pkg}.${service}/${method}`,
        requestStream: kind === 'client', responseStream: kind === 'server',
        requestSerialize: raw, requestDeserialize: raw,
        responseSerialize: raw, responseDeserialize: raw,
      };
      impl[method] = relay(service, method, kind);
    }
    server.addService(def, impl);
  }
}
server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`cannot listen on ${listen}: ${err.message}`);
    process.exit(1);
  }
  fs.writeFileSync(readyFile + '.tmp', 'ready');
  fs.renameSync(readyFile + '.tmp', readyFile);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
