import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DatasetError, FileError, ModelError, type TampError } from '../errors.js';
import { ZOO, zooNames } from '../zoo/zoo.js';
import { loadIdxFolder } from './datasets/idx-folder.js';
import { atomicWriteFile } from './files.js';
import { readModelArtifacts } from './model-files.js';
import { readPng } from './png.js';
import { checkModelSpec } from './train-single.js';
import { checkOutputFolder, readUserFile, userPathError } from './user-paths.js';

const dir = mkdtempSync(join(tmpdir(), 'tamp-paths-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function thrown(fn: () => unknown): TampError {
  try {
    fn();
  } catch (error) {
    return error as TampError;
  }
  throw new Error('expected a throw');
}

const CONTROL = /[\p{Cc}\ufffd]/u;

describe('paths a user named', () => {
  const model = { expected: 'a tfjs model.json', notFound: 'MODEL_NOT_FOUND', inFolder: ['model.json'] } as const;

  it('a folder given as a file is FILE_ACCESS naming the path and what belongs there, suggesting the file inside', () => {
    const run = join(dir, 'run');
    mkdirSync(run);
    const plain = thrown(() => readUserFile(run, model));
    expect(plain).toBeInstanceOf(FileError);
    expect(plain).toMatchObject({ code: 'FILE_ACCESS', path: run, osCode: 'EISDIR' });
    expect(plain.message).toBe(`${run}: is a folder; expected a tfjs model.json`);
    writeFileSync(join(run, 'model.json'), '{}');
    expect(thrown(() => readUserFile(run, model)).message).toBe(`${run}: is a folder; expected a tfjs model.json (did you mean ${join(run, 'model.json')}?)`);
  });

  it('a missing path takes the not-found code of what it should have been', () => {
    const missing = join(dir, 'absent.json');
    expect(thrown(() => readUserFile(missing, model))).toMatchObject({ code: 'MODEL_NOT_FOUND', constructor: ModelError });
    expect(thrown(() => readUserFile(missing, { expected: 'an IDX file', notFound: 'DATASET_NOT_FOUND' }))).toMatchObject({ code: 'DATASET_NOT_FOUND', file: missing });
    const image = thrown(() => readPng(missing));
    expect(image).toMatchObject({ code: 'FILE_NOT_FOUND', path: missing, osCode: 'ENOENT' });
    expect(image.message).toBe(`${missing}: cannot read it: no such file or folder; expected a PNG image`);
  });

  it('says what each refusal of the file system means (permissions cannot be taken from root, so the mapping is checked on its own)', () => {
    const osError = (code: string) => Object.assign(new Error(`${code}: raw`), { code });
    const denied = userPathError(osError('EACCES'), '/data/m.json', model);
    expect(denied).toMatchObject({ code: 'FILE_ACCESS', osCode: 'EACCES' });
    expect(denied.message).toBe('/data/m.json: permission denied: this user may not read it (check its permissions and those of its folders); expected a tfjs model.json');
    expect(userPathError(osError('EPERM'), '/out', { expected: 'a folder', access: 'write' }).message).toMatch(/may not write it/);
    expect(userPathError(osError('EROFS'), '/out', { expected: 'a folder' }).message).toBe('/out: is on a read-only file system; expected a folder');
    expect(userPathError(osError('ENOSPC'), '/out/x', { expected: 'a folder' }).message).toMatch(/no space left on its device/);
    expect(userPathError(osError('ELOOP'), '/x', { expected: 'a file' })).toMatchObject({ code: 'FILE_ACCESS', osCode: 'ELOOP', message: '/x: cannot read it (ELOOP: raw); expected a file' });
    // Already typed errors pass through unchanged.
    const typed = new DatasetError('DATASET_CORRUPT', 'x');
    expect(userPathError(typed, '/x', model)).toBe(typed);
  });

  it('refuses a bad --out before any work, and writes nothing when it is fine', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    expect(thrown(() => checkOutputFolder(file))).toMatchObject({ code: 'FILE_ACCESS', path: file, message: `${file}: is a file; expected --out: a folder this user can write to (created if missing)` });
    expect(thrown(() => checkOutputFolder(join(file, 'run')))).toMatchObject({ code: 'FILE_ACCESS', osCode: 'ENOTDIR' });
    const fresh = join(dir, 'new', 'deeper', 'run');
    checkOutputFolder(fresh);
    expect(existsSync(join(dir, 'new'))).toBe(false);
    checkOutputFolder(dir);
  });

  it('an atomic write under a file is FILE_ACCESS naming the file', () => {
    const file = join(dir, 'in-the-way');
    writeFileSync(file, 'x');
    const e = thrown(() => atomicWriteFile(join(file, 'report.json'), '{}'));
    expect(e).toBeInstanceOf(FileError);
    expect(e.message).toMatch(new RegExp(`^${join(file, 'report.json')}: .*expected a file in a folder this user can write to`));
  });

  it('an IDX "folder" that is a file says so', () => {
    const file = join(dir, 'train-images-idx3-ubyte');
    writeFileSync(file, 'x');
    expect(thrown(() => loadIdxFolder(file))).toMatchObject({ code: 'FILE_ACCESS', message: expect.stringMatching(/: is a file; expected an IDX dataset folder/) as unknown });
  });
});

describe('--model', () => {
  // Messages list every zoo name and name pattern (mobilenet-v2-<alpha>-<size>).
  const zoo = zooNames();

  it('a name outside the zoo is MODEL_UNKNOWN listing every zoo model (and that a model.json works too)', () => {
    const e = thrown(() => checkModelSpec('resnet-9000'));
    expect(e).toBeInstanceOf(ModelError);
    expect(e.code).toBe('MODEL_UNKNOWN');
    expect(e.message).toBe(`"resnet-9000" is not a zoo model (the zoo has ${zoo.join(', ')}) and no file of that name exists; --model also takes the path of a tfjs model.json`);
    for (const name of ZOO.keys()) expect(() => checkModelSpec(name)).not.toThrow();
  });

  it('a path that does not exist is MODEL_NOT_FOUND, a folder is FILE_ACCESS pointing at its model.json', () => {
    const e = thrown(() => checkModelSpec('runs/nothing/model.json'));
    expect(e.code).toBe('MODEL_NOT_FOUND');
    expect(e.message).toBe(`${resolve('runs/nothing/model.json')}: no such model file; --model takes the path of a tfjs model.json or a zoo name (${zoo.join(', ')})`);
    const run = join(dir, 'trained');
    mkdirSync(run);
    writeFileSync(join(run, 'model.json'), '{}');
    const folder = thrown(() => checkModelSpec(run));
    expect(folder).toMatchObject({ code: 'FILE_ACCESS', osCode: 'EISDIR' });
    expect(folder.message).toMatch(`(did you mean ${join(run, 'model.json')}?)`);
    expect(() => checkModelSpec(join(run, 'model.json'))).not.toThrow();
  });

  it('a .tamp or any binary file where a model.json belongs is MODEL_INVALID saying what to pass, without raw control bytes', () => {
    const tamp = join(dir, 'model.tamp');
    writeFileSync(tamp, Buffer.concat([Buffer.from('TAMPMODL'), Buffer.from([1, 0, 1, 0, 3, 0, 0, 0, 0x1b, 0x07, 0xff])]));
    const e = thrown(() => readModelArtifacts(tamp));
    expect(e).toMatchObject({ code: 'MODEL_INVALID' });
    expect(e.message).toBe(`${tamp} is a .tamp file (already compressed), not a tfjs model.json: pass the model.json it came from (tamp train writes OUT/model/model.json); tamp eval and tamp infer run a .tamp as it is`);
    const binary = join(dir, 'weights.bin');
    writeFileSync(binary, Buffer.from([0x00, 0x1b, 0x5b, 0x32, 0x4a, 0x07, 0x08, 0xfe, 0x9b, 0x0d]));
    const garbage = thrown(() => readModelArtifacts(binary));
    expect(garbage.code).toBe('MODEL_INVALID');
    expect(garbage.message).toMatch(/not valid JSON .*; expected a tfjs model.json$/);
    expect(garbage.message).not.toMatch(CONTROL);
  });
});
