#!/usr/bin/env node
// Regenerates packages/proto/src/gen from proto/ with buf + ts-proto.
// --check: generate into a temporary folder and fail if anything differs from
// the committed code (CI's drift check).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const committed = join(root, 'packages/proto/src/gen');
const check = process.argv.includes('--check');
const bin = join(root, 'node_modules/.bin');

const out = mkdtempSync(join(tmpdir(), 'tamp-proto-'));
try {
  const template = readFileSync(join(root, 'proto/buf.gen.yaml'), 'utf8').replace('../packages/proto/src/gen', out);
  writeFileSync(join(out, 'buf.gen.yaml'), template);
  const gen = join(out, 'gen');
  execFileSync(join(bin, 'buf'), ['lint'], { cwd: join(root, 'proto'), stdio: 'inherit' });
  execFileSync(join(bin, 'buf'), ['generate', '--template', join(out, 'buf.gen.yaml'), '--output', gen], {
    cwd: join(root, 'proto'),
    stdio: 'inherit',
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
  });
  const fresh = join(gen, out);
  if (check) {
    const a = listFiles(fresh);
    const b = listFiles(committed);
    const problems = [];
    for (const f of new Set([...a, ...b])) {
      if (!a.includes(f)) problems.push(`${f}: committed but no longer generated`);
      else if (!b.includes(f)) problems.push(`${f}: generated but not committed`);
      else if (!readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f)))) problems.push(`${f}: differs`);
    }
    if (problems.length > 0) {
      console.error(`proto drift in packages/proto/src/gen (run pnpm proto and commit):\n  ${problems.join('\n  ')}`);
      process.exit(1);
    }
    console.log(`proto: ${a.length} generated files match proto/`);
  } else {
    rmSync(committed, { recursive: true, force: true });
    cpSync(fresh, committed, { recursive: true });
    console.log(`proto: wrote ${listFiles(committed).length} files to ${relative(root, committed)}`);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}

function listFiles(dir, base = dir) {
  let files = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return files;
  }
  for (const name of entries) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files = files.concat(listFiles(p, base));
    else files.push(relative(base, p));
  }
  return files.sort();
}
