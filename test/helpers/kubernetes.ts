/**
 * Kubernetes manifests as the cluster would read them: `kubectl kustomize`
 * renders (offline) and accessors for workloads, pod specs, containers,
 * their environment, arguments, ports and volumes.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';
import { DOCKER_DIR, type Obj, expandKubernetesVars, list, obj, parseYamlStream, str } from './containers.js';

const rendered = new Map<string, Obj[]>();

/** `kubectl kustomize docker/k8s/<dir>`: renders offline, no cluster needed. */
export function kustomize(dir: string): Obj[] {
  const cached = rendered.get(dir);
  if (cached !== undefined) return cached;
  let text: string;
  try {
    text = execFileSync('kubectl', ['kustomize', join(DOCKER_DIR, 'k8s', dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const e = error as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error('kubectl is not installed: the Kubernetes manifests are rendered with `kubectl kustomize` (offline); install kubectl (Debian: apt-get install kubernetes-client; scripts/setup.sh does)');
    throw new Error(`kubectl kustomize docker/k8s/${dir} failed: ${e.stderr ?? e.message}`);
  }
  const docs = parseYamlStream(text, `kustomize ${dir}`);
  rendered.set(dir, docs);
  return docs;
}

export function resource(docs: readonly Obj[], kind: string, name: string): Obj {
  const found = docs.find((d) => d.kind === kind && obj(d.metadata, kind).name === name);
  if (found === undefined) throw new Error(`no ${kind} ${name} (have ${docs.map((d) => `${String(d.kind)}/${String(obj(d.metadata, 'metadata').name)}`).join(', ')})`);
  return found;
}

export function podTemplate(workload: Obj): Obj {
  return obj(obj(workload.spec, 'spec').template, 'spec.template');
}

export function podSpec(workload: Obj): Obj {
  return obj(podTemplate(workload).spec, 'template.spec');
}

export function podLabels(workload: Obj): Record<string, string> {
  return obj(obj(podTemplate(workload).metadata, 'template.metadata').labels, 'template labels') as Record<string, string>;
}

export function container(spec: Obj, name: string): Obj {
  const found = list(spec.containers, 'containers')
    .map((c) => obj(c, 'container'))
    .find((c) => c.name === name);
  if (found === undefined) throw new Error(`no container ${name}`);
  return found;
}

/** A container's environment as Kubernetes would see it, with the downward-API fields given. */
export function containerEnv(c: Obj, fields: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env === undefined ? [] : list(c.env, 'env')) {
    const v = obj(e, 'env');
    const name = str(v.name, 'env.name');
    if (v.value !== undefined) env[name] = str(v.value, name);
    else {
      const path = str(obj(obj(v.valueFrom, name).fieldRef, name).fieldPath, name);
      const value = fields[path];
      if (value === undefined) throw new Error(`env ${name}: no test value for ${path}`);
      env[name] = value;
    }
  }
  return env;
}

export function argsOf(c: Obj, env: Readonly<Record<string, string>> = {}): string[] {
  expect(c.command, 'the image entrypoint (tamp) stays: args only').toBeUndefined();
  return list(c.args, 'args').map((a) => expandKubernetesVars(str(a, 'args'), env));
}

export function selects(selector: Readonly<Record<string, unknown>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

export function portNamed(c: Obj, name: string): number {
  const port = list(c.ports, 'ports')
    .map((p) => obj(p, 'port'))
    .find((p) => p.name === name);
  if (port === undefined) throw new Error(`no port named ${name}`);
  return Number(port.containerPort);
}

export function volumeMounts(c: Obj): Array<{ name: string; mountPath: string }> {
  return (c.volumeMounts === undefined ? [] : list(c.volumeMounts, 'volumeMounts')).map((m) => obj(m, 'volumeMount') as { name: string; mountPath: string });
}

export function claimOf(spec: Obj, volume: string): string | undefined {
  const v = list(spec.volumes, 'volumes')
    .map((x) => obj(x, 'volume'))
    .find((x) => x.name === volume);
  return v === undefined ? undefined : (obj(v.persistentVolumeClaim, `${volume}.persistentVolumeClaim`).claimName as string);
}

export const COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
