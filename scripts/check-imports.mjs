#!/usr/bin/env node
// Import checks over packages/*/src, test/ and demos/*/src:
//  1. no circular imports between modules (type-only imports excluded: they
//     vanish at run time);
//  2. the package boundaries of ARCHITECTURE.md: only @tamp/rpc (and the
//     generated code of @tamp/proto) imports @grpc/grpc-js (tests under test/
//     may, to build protocol clients independently of Tamp's); @tamp/core,
//     @tamp/compress and the browser entries never import gRPC (nor the
//     generated services); @tamp/rpc knows nothing of tensors or training
//     (no @tamp/proto, no other @tamp package but core, or core/base); browser entries never
//     import Node built-ins or @tamp/core/node.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const roots = ['packages', 'test', 'demos'].map((d) => join(root, d));

function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Map a workspace package import to its source file through the package's exports. */
function resolveWorkspace(spec) {
  const m = /^(@tamp\/[^/]+)(\/.*)?$/.exec(spec);
  if (!m) return undefined;
  const dirs = [join(root, 'packages', m[1].slice(6)), join(root, m[1].slice(6))];
  const pkgDir = dirs.find((d) => existsSync(join(d, 'package.json')));
  if (!pkgDir) return undefined;
  const exportsMap = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).exports ?? {};
  const sub = `.${m[2] ?? ''}`;
  for (const [key, target] of Object.entries(exportsMap)) {
    const t = typeof target === 'string' ? target : target.default ?? target.import;
    if (key === sub) return join(pkgDir, t);
    if (key.endsWith('*') && sub.startsWith(key.slice(0, -1))) return join(pkgDir, t.replace('*', sub.slice(key.length - 1)));
  }
  return undefined;
}

function resolveImport(from, spec) {
  if (spec.startsWith('.')) {
    const base = resolve(dirname(from), spec);
    for (const c of [base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), base, `${base}.ts`, join(base, 'index.ts')]) {
      if (existsSync(c) && statSync(c).isFile()) return c;
    }
    return undefined;
  }
  return resolveWorkspace(spec);
}

const IMPORT = /(?:^|[\n;])\s*(import|export)\s+(type\s+)?(?:[\s\S]*?\sfrom\s+)?['"]([^'"\n]+)['"]/g;
const DYNAMIC = /import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file) {
  const text = readFileSync(file, 'utf8');
  const found = [];
  for (const m of text.matchAll(IMPORT)) found.push({ spec: m[3], typeOnly: m[2] !== undefined });
  for (const m of text.matchAll(DYNAMIC)) found.push({ spec: m[1], typeOnly: false });
  return found;
}

const files = roots.flatMap((d) => walk(d)).filter((f) => !f.includes('/src/gen/'));
const graph = new Map();
const problems = [];

const BROWSER = [/packages\/core\/src\/(?!node\/)/, /packages\/compress\/src\/(?!node\/)/, /packages\/webgpu\/src\/(?!node\/)/, /demos\/[^/]+\/src\//];
const NO_GRPC = [/packages\/core\//, /packages\/compress\//, /packages\/webgpu\//, /demos\//];
const GRPC_OWNER = /^packages\/rpc\//;
// Conformance tests call Tamp's public protocols with clients of their own (e.g. @grpc/proto-loader over the .proto).
const GRPC_TESTS = /^test\//;
const NODE_BUILTINS = new Set(['fs', 'path', 'os', 'child_process', 'zlib', 'http', 'https', 'net', 'worker_threads', 'crypto', 'url', 'module', 'stream', 'util', 'events']);

for (const file of files) {
  const rel = relative(root, file);
  const edges = [];
  for (const { spec, typeOnly } of importsOf(file)) {
    if (NO_GRPC.some((r) => r.test(rel)) && !rel.endsWith('.test.ts') && (spec === '@grpc/grpc-js' || /^@tamp\/proto\/tamp\/v1\/(parameter_server|coordinator)$/.test(spec))) {
      problems.push(`${rel}: imports ${spec}, but this package must not depend on gRPC (ARCHITECTURE.md)`);
    }
    if (spec === '@grpc/grpc-js' && !GRPC_OWNER.test(rel) && !GRPC_TESTS.test(rel)) {
      problems.push(`${rel}: imports @grpc/grpc-js; only @tamp/rpc may (ARCHITECTURE.md): use its helpers, or add what is missing there`);
    }
    if (GRPC_OWNER.test(rel) && /^@tamp\//.test(spec) && spec !== '@tamp/core' && spec !== '@tamp/core/base' && spec !== '@tamp/rpc') {
      problems.push(`${rel}: imports ${spec}, but @tamp/rpc depends on @tamp/core only (it knows nothing of tensors or training; ARCHITECTURE.md)`);
    }
    if (BROWSER.some((r) => r.test(rel)) && !rel.endsWith('.test.ts') && !typeOnly) {
      const bare = spec.replace(/^node:/, '').split('/')[0];
      if (spec.startsWith('node:') || NODE_BUILTINS.has(bare)) problems.push(`${rel}: browser code imports the Node built-in ${spec}`);
      if (/^@tamp\/(core|compress|webgpu)\/node/.test(spec)) problems.push(`${rel}: browser code imports ${spec}`);
    }
    if (typeOnly) continue;
    const target = resolveImport(file, spec);
    if (target) edges.push(target);
    else if (spec.startsWith('.')) problems.push(`${rel}: cannot resolve ${spec}`);
  }
  graph.set(file, edges);
}

// Tarjan's strongly connected components: any component of more than one
// module (or a module importing itself) is a cycle.
let index = 0;
const stack = [];
const onStack = new Set();
const idx = new Map();
const low = new Map();
const cycles = [];
function strong(v) {
  idx.set(v, index);
  low.set(v, index);
  index++;
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!idx.has(w)) {
      strong(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const comp = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(comp);
  }
}
for (const v of graph.keys()) if (!idx.has(v)) strong(v);
for (const c of cycles) problems.push(`circular import among: ${c.map((f) => relative(root, f)).join(' -> ')}`);

if (problems.length > 0) {
  console.error(`import check failed:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`imports: ${files.length} modules, no cycles, package boundaries respected`);
