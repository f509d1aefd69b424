/**
 * Deterministic, size-balanced placement of variables on P parameter
 * servers. A variable larger than a fair share (total / P) is split into
 * ranges of its flattened elements, so one big kernel does not load one
 * server; parts are then placed largest first on the least loaded shard
 * (ties to the lowest index). The result depends only on the variables'
 * names, shapes and order, and P: every role computes the same placement.
 *
 * Pure and browser-safe: the chief computes it, workers receive it in their
 * job configuration, and ParameterClient splits and reassembles through it.
 */
import { sizeOfShape } from '../codec/tensor-codec.js';
import { InvalidArgumentError } from '../errors.js';

export interface VariableSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/** A variable, or the slice [sliceStart, sliceStart + sliceLength) of its flattened elements. */
export interface VariablePart {
  readonly name: string;
  readonly shape: readonly number[];
  readonly sliceStart: number;
  readonly sliceLength: number;
}

export interface Placement {
  readonly shards: ReadonlyArray<readonly VariablePart[]>;
}

export function placeVariables(variables: readonly VariableSpec[], shardCount: number): Placement {
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new InvalidArgumentError(`need at least one parameter server, got ${shardCount}`);
  const names = new Set<string>();
  for (const v of variables) {
    if (names.has(v.name)) throw new InvalidArgumentError(`variable "${v.name}" appears twice`);
    names.add(v.name);
  }
  const total = variables.reduce((n, v) => n + sizeOfShape(v.shape), 0);
  const fair = Math.max(1, Math.ceil(total / shardCount));
  const parts: Array<VariablePart & { order: number }> = [];
  for (const v of variables) {
    const size = sizeOfShape(v.shape);
    const pieces = shardCount > 1 && size > fair ? Math.ceil(size / fair) : 1;
    const base = Math.floor(size / pieces);
    let start = 0;
    for (let p = 0; p < pieces; p++) {
      const length = base + (p < size % pieces ? 1 : 0);
      parts.push({ name: v.name, shape: v.shape, sliceStart: start, sliceLength: length, order: parts.length });
      start += length;
    }
  }
  const byLoad = [...parts].sort((a, b) => b.sliceLength - a.sliceLength || a.order - b.order);
  const loads = new Array<number>(shardCount).fill(0);
  const shards: Array<Array<VariablePart & { order: number }>> = Array.from({ length: shardCount }, () => []);
  for (const part of byLoad) {
    let best = 0;
    for (let s = 1; s < shardCount; s++) if ((loads[s] as number) < (loads[best] as number)) best = s;
    (shards[best] as Array<VariablePart & { order: number }>).push(part);
    loads[best] = (loads[best] as number) + part.sliceLength;
  }
  return {
    shards: shards.map((list) =>
      list.sort((a, b) => a.order - b.order).map(({ name, shape, sliceStart, sliceLength }) => ({ name, shape, sliceStart, sliceLength })),
    ),
  };
}

/** Elements held by each shard. */
export function shardLoads(placement: Placement): number[] {
  return placement.shards.map((parts) => parts.reduce((n, p) => n + p.sliceLength, 0));
}

/** Key of a part within a shard: its name and where its slice starts. */
export function partKey(name: string, sliceStart: number): string {
  return `${name}@${sliceStart}`;
}
