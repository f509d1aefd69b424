#!/usr/bin/env node
// The wire contract against the last released schema (ARCHITECTURE.md, @tamp/proto).
//
//   pnpm proto:breaking   buf breaking of proto/ against proto/released.binpb (CI)
//   pnpm proto:release    accept the current proto/ as the released schema:
//                         refused while buf breaking fails unless PROTOCOL_VERSION
//                         (packages/core/src/protocol.ts) is above the released one
//                         and ARCHITECTURE.md has a line "- Protocol <N>: ..." for it
//
// proto/released.json records the protocol version the snapshot was released as.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const protoDir = join(root, 'proto');
const buf = join(root, 'node_modules/.bin/buf');
const snapshot = 'released.binpb';
const recordFile = join(protoDir, 'released.json');
const release = process.argv.includes('--release');

function currentVersion() {
  const source = readFileSync(join(root, 'packages/core/src/protocol.ts'), 'utf8');
  const m = /export const PROTOCOL_VERSION = (\d+);/.exec(source);
  if (m === null) fail('cannot find `export const PROTOCOL_VERSION = <n>;` in packages/core/src/protocol.ts');
  return Number(m[1]);
}

function fail(message) {
  console.error(`proto: ${message}`);
  process.exit(1);
}

const released = JSON.parse(readFileSync(recordFile, 'utf8')).protocolVersion;
const version = currentVersion();
const check = spawnSync(buf, ['breaking', '--against', snapshot], { cwd: protoDir, encoding: 'utf8' });
if (check.error !== undefined) fail(`cannot run buf: ${check.error.message}`);
const breaks = check.status !== 0;

if (!release) {
  if (breaks) {
    process.stderr.write(check.stdout + check.stderr);
    fail(
      `proto/ breaks the wire contract of protocol ${released} (above). If the break is intended: bump PROTOCOL_VERSION ` +
        `in packages/core/src/protocol.ts, add "- Protocol <N>: <what changed>" to ARCHITECTURE.md (@tamp/proto), then run pnpm proto:release and commit.`,
    );
  }
  console.log(`proto: no breaking change against the released schema (protocol ${released})`);
  process.exit(0);
}

if (breaks && version <= released) {
  process.stderr.write(check.stdout + check.stderr);
  fail(`this release breaks protocol ${released} (above) but PROTOCOL_VERSION is still ${version}: bump it first`);
}
if (version > released && !new RegExp(`^- Protocol ${version}: `, 'm').test(readFileSync(join(root, 'ARCHITECTURE.md'), 'utf8'))) {
  fail(`ARCHITECTURE.md has no line "- Protocol ${version}: <what changed>" (in @tamp/proto's list of protocol versions)`);
}
execFileSync(buf, ['build', '--exclude-source-info', '-o', snapshot], { cwd: protoDir, stdio: 'inherit' });
writeFileSync(recordFile, `${JSON.stringify({ protocolVersion: version }, null, 2)}\n`);
console.log(`proto: proto/${snapshot} is now the released schema of protocol ${version}${breaks ? ' (an intended break)' : ''}; commit it`);
