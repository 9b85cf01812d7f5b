// Times google-auth-library's OAuth2Client.verifySignedJwtWithCertsAsync (certificates passed in: no network per
// call) on the tokens idgate-bench wrote. Prints one JSON object: per algorithm, ops/s and the median µs/op.
//
// Usage: node google_auth_library.js INPUT.json   (NODE_PATH pointing at the local node_modules)
'use strict';

const fs = require('fs');
const path = require('path');
const { OAuth2Client } = require('google-auth-library');

async function main() {
  const data = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const client = new OAuth2Client();
  const contender = (spec) => async (i) => {
    await client.verifySignedJwtWithCertsAsync(
      spec.tokens[i % spec.tokens.length], spec.certs, spec.audience, spec.issuers);
  };
  const ops = { rs256: contender(data.rs256), es256: contender(data.es256) };
  for (const kind of Object.keys(ops)) {
    for (let i = 0; i < data[kind].tokens.length; i++) await ops[kind](i); // sanity
  }
  const results = {};
  for (const kind of Object.keys(ops)) results[kind] = { ops: 0, elapsed: 0, chunks: [] };
  let index = 0;
  const sliceNs = BigInt(data.slice_ms) * 1000000n;
  for (let round = 0; round < data.rounds; round++) {
    for (const [kind, op] of Object.entries(ops)) {
      const r = results[kind];
      const start = process.hrtime.bigint();
      while (process.hrtime.bigint() - start < sliceNs) {
        const t = process.hrtime.bigint();
        for (let j = 0; j < data.chunk; j++) await op(index++);
        const dt = Number(process.hrtime.bigint() - t);
        r.ops += data.chunk;
        r.elapsed += dt / 1e9;
        r.chunks.push(dt / data.chunk / 1000);
      }
    }
  }
  const median = (v) => {
    const s = [...v].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const out = {};
  for (const [kind, r] of Object.entries(results)) {
    out[kind] = { ops_per_s: r.ops / r.elapsed, median_us: median(r.chunks), ops: r.ops };
  }
  out.versions = {
    node: process.version,
    'google-auth-library': JSON.parse(fs.readFileSync(
      path.join(process.env.NODE_PATH, 'google-auth-library', 'package.json'), 'utf8')).version,
  };
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
