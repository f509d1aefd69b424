import { describe, expect, it } from 'vitest';
import { ClusterError } from '@tamp/core';
import { parseAddressList, parseTfConfig, portOf } from './cluster-config.js';

const cluster = { chief: ['chief:2222'], ps: ['ps-0:2222', 'ps-1:2222'], worker: ['w-0:2222', 'w-1:2222', 'w-2:2222'] };

describe('TF_CONFIG', () => {
  it('reads Kubeflow TFJob cluster descriptions', () => {
    const tf = parseTfConfig(JSON.stringify({ cluster, task: { type: 'worker', index: 2 } }));
    expect(tf?.task).toEqual({ type: 'worker', index: 2 });
    expect(tf?.cluster.ps).toEqual(['ps-0:2222', 'ps-1:2222']);
    expect(parseTfConfig(JSON.stringify({ cluster: { ...cluster, chief: undefined, master: ['m:1'] }, task: { type: 'master', index: 0 } }))?.task.type).toBe('chief');
    expect(parseTfConfig(undefined)).toBeUndefined();
    expect(parseTfConfig('  ')).toBeUndefined();
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not JSON', '{cluster', /not valid JSON/],
    ['no task', { cluster }, /needs "cluster" and "task"/],
    ['unknown role', { cluster, task: { type: 'evaluator', index: 0 } }, /task.type "evaluator" is not one of chief, ps, worker/],
    ['index out of range', { cluster, task: { type: 'ps', index: 2 } }, /task ps 2 does not exist \(cluster.ps has 2\)/],
    ['negative index', { cluster, task: { type: 'worker', index: -1 } }, /task.index must be a non-negative integer/],
    ['two chiefs', { cluster: { ...cluster, chief: ['a:1', 'b:2'] }, task: { type: 'ps', index: 0 } }, /exactly one address, got 2/],
    ['no ps', { cluster: { ...cluster, ps: [] }, task: { type: 'worker', index: 0 } }, /cluster.ps needs at least one address/],
    ['bad address', { cluster: { ...cluster, worker: ['w-0'] }, task: { type: 'worker', index: 0 } }, /cluster.worker has "w-0", expected "host:port"/],
  ];
  for (const [name, value, pattern] of bad) {
    it(`refuses ${name}`, () => {
      const raw = typeof value === 'string' ? value : JSON.stringify(value);
      expect(() => parseTfConfig(raw)).toThrow(ClusterError);
      expect(() => parseTfConfig(raw)).toThrow(pattern);
    });
  }

  it('parses address lists and ports', () => {
    expect(parseAddressList('a:1, b:2,[::1]:3', '--ps')).toEqual(['a:1', 'b:2', '[::1]:3']);
    expect(() => parseAddressList('a:1,nope', '--ps')).toThrow('--ps: "nope" is not "host:port"');
    expect(portOf('ps-0.ps.default.svc:2222')).toBe(2222);
  });
});
