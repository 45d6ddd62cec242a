/**
 * Versions in the folder (Triton's convention), per-version overrides, the declared split, and
 * every refused declaration: one line naming the file and the field.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { declarationSnapshot, DeclarationError, type FunctionDeclaration } from './define.ts';
import { resolveFunction } from './discover.ts';
import { atVersion } from './version.ts';
import { cardOf } from '../pages/describe.ts';
import { FIXTURES, ROOT } from '../testing/index.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelfn-versions-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const config = { bodyLimit: 10 * 1024 * 1024, timeoutMs: 30_000 };
const IRIS = join(ROOT, 'functions/iris/model.onnx');
const DIGITS = join(ROOT, 'functions/digits/model.onnx');
const NORMALIZER = join(FIXTURES, 'normalizer.onnx');

let count = 0;
/** A function folder holding the given files (path in the folder -> model to copy). */
function folder(files: Record<string, string>): string {
  const dir = join(scratch, `fn${++count}`, 'flowers');
  for (const [path, model] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    copyFileSync(model, join(dir, path));
  }
  return dir;
}
const twoVersions = () => folder({ '1/model.onnx': IRIS, '2/model.onnx': IRIS });
const resolve = (dir: string, declaration?: FunctionDeclaration) => resolveFunction(dir, declaration, declaration && join(dir, 'function.ts'), config);
/** The one-line error of a refused folder or declaration, with the scratch path taken off. */
async function problem(dir: string, declaration?: FunctionDeclaration): Promise<string> {
  try {
    await resolve(dir, declaration);
  } catch (err) {
    expect(err).toBeInstanceOf(DeclarationError);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message.replace(`${join(dir, '..')}/`, '');
  }
  throw new Error('the declaration was accepted');
}

describe('each version its own scale', () => {
  it('lets a version scale on its own (asleep at min 0) while the others keep their replicas', async () => {
    const fn = (await resolve(twoVersions(), { replicas: 2, traffic: { '1': 0, '2': 100 }, versions: { '1': { scale: { min: 0, idleSeconds: 60 } } } }));
    const [v1, v2] = fn.versions;
    expect([v1.replicas, v1.scale]).toEqual([1, { min: 0, max: 1, idleSeconds: 60, wake: 'start', concurrency: 32 }]);
    expect([v2.replicas, v2.scale]).toEqual([2, undefined]);
    // The function's own fields are its highest version's, which does not scale.
    expect([fn.replicas, fn.scale]).toEqual([2, undefined]);
    expect(atVersion(fn, '1').scale?.min).toBe(0);
    expect(atVersion(fn, '2').scale).toBeUndefined();
    // The gateway page treats it as a function that scales: nginx never asks its /stats as the page goes out (no page view wakes version 1).
    expect(cardOf({ ...fn, ownRoutes: [] }).scales).toBe(true);
  });

  it("gives every version the function's scale unless it has its own, its concurrency from its own batching", async () => {
    const fn = (await resolve(twoVersions(), { scale: { min: 1, max: 3 }, versions: { '2': { batching: { enabled: false } }, '1': { scale: { min: 0, max: 2, wake: 'unpause' }, replicas: 2 } } }));
    expect(fn.versions.map((v) => [v.replicas, v.scale])).toEqual([
      [2, { min: 0, max: 2, idleSeconds: 300, wake: 'unpause', concurrency: 32 }],
      [1, { min: 1, max: 3, idleSeconds: 300, wake: 'start', concurrency: 8 }],
    ]);
    expect(fn.scale).toEqual(fn.versions[1].scale);
    // A version's replicas with the function's scale lie within its bounds.
    expect((await resolve(twoVersions(), { scale: { min: 0, max: 4 }, versions: { '1': { replicas: 3 } } })).versions.map((v) => v.replicas)).toEqual([3, 1]);
    // One version, overridden by its own name: the function's fields are that version's.
    expect((await resolve(folder({ 'model.onnx': IRIS }), { versions: { '1': { scale: { min: 0, idleSeconds: 5 } } } })).scale).toMatchObject({ min: 0, idleSeconds: 5 });
  });

  it("refuses a version's scale that disagrees with its replicas, or is no scale, naming the version's field", async () => {
    const dir = twoVersions();
    expect((await problem(dir, { versions: { '1': { scale: { min: 3, max: 2 } } } }))).toBe('flowers/function.ts: versions.1.scale.min: must be at most versions.1.scale.max (2), got 3');
    expect((await problem(dir, { versions: { '1': { scale: { min: 2, max: 4 }, replicas: 1 } } }))).toBe('flowers/function.ts: versions.1.replicas: must be at least versions.1.scale.min (2), got 1');
    expect((await problem(dir, { versions: { '2': { scale: { max: 2 }, replicas: 3 } } }))).toBe('flowers/function.ts: versions.2.scale.max: must be at least versions.2.replicas (3), got 2');
    expect((await problem(dir, { scale: { max: 2 }, versions: { '1': { replicas: 3 } } }))).toBe('flowers/function.ts: scale.max: must be at least versions.1.replicas (3), got 2');
    expect((await problem(dir, { versions: { '1': { scale: { min: -1 } } } }))).toBe('flowers/function.ts: versions.1.scale.min: too small: expected number to be >=0');
    expect((await problem(dir, { versions: { '1': { scale: { idle: 3 } as never } } }))).toMatch(/^flowers\/function\.ts: versions\.1\.scale: unrecognized key.*idle/i);
    expect((await problem(dir, { versions: { '2': { scale: { wake: 'thaw' as never } } } }))).toMatch(/^flowers\/function\.ts: versions\.2\.scale\.wake: /);
  });
});

describe('versions in the function folder', () => {
  it('keeps a bare model.onnx one version, 1, as it always was, with everything on it', async () => {
    const fn = (await resolve(folder({ 'model.onnx': IRIS })));
    expect(fn.version).toBe('1');
    expect(fn.versions.map((v) => [v.version, v.modelFile])).toEqual([['1', 'model.onnx']]);
    expect(fn.traffic).toEqual([{ version: '1', percent: 100 }]);
    expect(fn.shadow).toEqual([]);
    expect((await resolve(folder({ 'model.onnx': IRIS }), { version: '7' })).versions.map((v) => v.version)).toEqual(['7']);
  });

  it('reads numbered folders as versions, lowest first, and sends everything to the highest by default', async () => {
    const dir = folder({ '1/model.onnx': IRIS, '10/model.onnx': IRIS, '2/model.onnx': IRIS });
    mkdirSync(join(dir, 'test'));
    const fn = (await resolve(dir));
    expect(fn.versions.map((v) => v.version)).toEqual(['1', '2', '10']);
    expect(fn.versions[2].modelPath).toBe(join(dir, '10/model.onnx'));
    expect([fn.version, fn.modelFile]).toEqual(['10', '10/model.onnx']);
    expect(fn.traffic).toEqual([{ version: '10', percent: 100 }]);
  });

  it('gives each version its own model fields: its override, else the function\'s, else the defaults', async () => {
    const fn = (await resolve(twoVersions(), {
      labels: ['a', 'b', 'c'],
      limits: { timeoutMs: 5000 },
      replicas: 3,
      versions: { '2': { labels: { probabilities: ['x', 'y', 'z'] }, batching: { enabled: false } }, '1': { replicas: 1 } },
    }));
    expect(fn.versions.map((v) => v.replicas)).toEqual([1, 3]);
    const [v1, v2] = fn.versions;
    expect([v1.defaultLabels, v1.batching.enabled, v1.limits.timeoutMs]).toEqual([['a', 'b', 'c'], true, 5000]);
    expect([v2.labels, v2.defaultLabels, v2.batching.enabled, v2.limits.timeoutMs]).toEqual([{ probabilities: ['x', 'y', 'z'] }, undefined, false, 5000]);
    const one = atVersion(fn, '1');
    expect([one.version, one.modelPath, one.defaultLabels, one.name, one.prefix]).toEqual(['1', v1.modelPath, ['a', 'b', 'c'], 'flowers', '/flowers']);
    expect(atVersion(fn, '2').batching.enabled).toBe(false);
  });

  it('takes the declared split and shadow in version order', async () => {
    const dir = folder({ '1/model.onnx': IRIS, '2/model.onnx': IRIS, '3/model.onnx': IRIS });
    const fn = (await resolve(dir, { traffic: { '2': 20, '1': 80 }, shadow: { '3': 100 } }));
    expect(fn.traffic).toEqual([{ version: '1', percent: 80 }, { version: '2', percent: 20 }]);
    expect(fn.shadow).toEqual([{ version: '3', percent: 100 }]);
    expect((await resolve(dir, { traffic: { '1': 33.33, '2': 33.33, '3': 33.34 } })).traffic).toHaveLength(3);
  });
});

describe('refused versions and splits, one line each', () => {
  it('refuses a split that does not sum to 100, names a missing version, or is no percentage', async () => {
    const dir = twoVersions();
    expect((await problem(dir, { traffic: { '1': 80, '2': 10 } }))).toBe('flowers/function.ts: traffic: percentages must sum to 100, got 90');
    expect((await problem(dir, { traffic: { '1': 80, '3': 20 } }))).toBe("flowers/function.ts: traffic.3: no version '3' (versions: 1, 2)");
    expect((await problem(dir, { traffic: { '1': 120 } }))).toBe('flowers/function.ts: traffic.1: must be a percentage from 0 to 100');
    expect((await problem(dir, { traffic: { '1': 50.005, '2': 49.995 } }))).toBe('flowers/function.ts: traffic.1: at most two decimals, got 50.005');
    expect((await problem(dir, { traffic: { '1': '80' as unknown as number, '2': 20 } }))).toMatch(/^flowers\/function\.ts: traffic\.1: expected number/);
  });

  it('refuses a shadow over 100, of a missing version, or of a version that serves', async () => {
    const dir = twoVersions();
    expect((await problem(dir, { shadow: { '3': 10 } }))).toBe("flowers/function.ts: shadow.3: no version '3' (versions: 1, 2)");
    expect((await problem(dir, { traffic: { '1': 100 }, shadow: { '1': 50, '2': 60 } }))).toBe('flowers/function.ts: shadow: percentages must sum to at most 100, got 110');
    expect((await problem(dir, { shadow: { '2': 10 } }))).toBe('flowers/function.ts: shadow.2: version 2 also serves traffic; a shadow only gets copies of requests');
  });

  it('refuses overrides of versions that do not exist, and model or version beside version folders', async () => {
    const dir = twoVersions();
    expect((await problem(dir, { versions: { '3': { labels: ['x'] } } }))).toBe("flowers/function.ts: versions.3: no version '3' (versions: 1, 2)");
    expect((await problem(dir, { versions: { '2': { prefix: '/x' } as never } }))).toMatch(/^flowers\/function\.ts: versions\.2: unrecognized key/i);
    expect((await problem(dir, { model: 'other.onnx' }))).toBe("flowers/function.ts: model: the versions come from the folders 1/, 2/; remove 'model'");
    expect((await problem(dir, { version: '3' }))).toBe("flowers/function.ts: version: the versions come from the folders 1/, 2/; remove 'version'");
  });

  it('refuses a bare model.onnx beside version folders, and a version folder without a model', async () => {
    expect((await problem(folder({ 'model.onnx': IRIS, '1/model.onnx': IRIS })))).toBe('flowers: holds both model.onnx and version folders (1/); move model.onnx into a version folder');
    const dir = twoVersions();
    mkdirSync(join(dir, '3'));
    writeFileSync(join(dir, '3/notes.txt'), '');
    expect((await problem(dir))).toBe('flowers/3: version folder without model.onnx');
  });

  it('refuses a version whose inputs break the custom routes, naming its model and the input', async () => {
    const routes = () => {};
    expect((await problem(folder({ '1/model.onnx': IRIS, '2/model.onnx': NORMALIZER }), { routes }))).toBe(
      "flowers/2/model.onnx: input 'input' (input FP32 [-1, 4]) of version 1, which the function's routes use, does not fit: its inputs are text",
    );
    expect((await problem(folder({ '1/model.onnx': IRIS, '2/model.onnx': DIGITS }), { routes }))).toBe(
      "flowers/2/model.onnx: input 'input' (input FP32 [-1, 4]) of version 1, which the function's routes use, does not fit: it has input FP32 [-1, 64]",
    );
    // Without custom routes the protocol adapts to each version's model: nothing to break.
    expect((await resolve(folder({ '1/model.onnx': IRIS, '2/model.onnx': DIGITS }))).versions).toHaveLength(2);
    expect((await resolve(twoVersions(), { routes })).versions).toHaveLength(2);
  });
});

/** A protobuf varint. */
function varint(n: number): Buffer {
  const bytes: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) bytes.push((n & 0x7f) | 0x80);
  bytes.push(n);
  return Buffer.from(bytes);
}
/** A length-delimited protobuf field. */
const bytesField = (field: number, data: Buffer) => Buffer.concat([varint((field << 3) | 2), varint(data.length), data]);
/** A model file with one more `metadata_props` entry (ModelProto field 14; a field may come last). */
const withMetadata = (model: string, key: string, value: string) => Buffer.concat([
  readFileSync(model),
  bytesField(14, Buffer.concat([bytesField(1, Buffer.from(key)), bytesField(2, Buffer.from(value))])),
]);

describe('a declaration its build checked', () => {
  const file = (dir: string) => join(dir, 'function.ts');

  it('is not checked again when its digest is the build\'s, and is checked when it differs', async () => {
    const dir = twoVersions();
    const built = await resolveFunction(dir, { replicas: 2 }, file(dir), config);
    // What is digested: the declaration and what each version's model documents (iris: nothing).
    const digestOf = (declaration: object) => declarationSnapshot({ declaration, versionDocs: [{}, {}] })!.digest;
    expect(built.checkedDigest).toBe(digestOf({ replicas: 2 }));
    expect((await resolveFunction(dir, { replicas: 2 }, file(dir), config, { checked: built.checkedDigest })).replicas).toBe(2);
    await expect(resolveFunction(dir, { replicas: 0 }, file(dir), config, { checked: built.checkedDigest })).rejects.toThrow(/function\.ts: replicas: too small/);
    // The skip is real: a digest that matches is trusted (a build records only the digests of declarations it checked).
    const trusted = await resolveFunction(dir, { replicas: 0 }, file(dir), config, { checked: digestOf({ replicas: 0 }) });
    expect(trusted.replicas).toBe(0);
  });

  it("checks what a version folder's model documents itself, naming the model file", async () => {
    const dir = twoVersions();
    writeFileSync(join(dir, '2/model.onnx'), withMetadata(IRIS, 'modelfn.example', JSON.stringify({ inputs: [] })));
    expect(await problem(dir)).toBe("flowers/2/model.onnx: metadata_props 'modelfn.example': inputs: too small: expected array to have >=1 items");
    writeFileSync(join(dir, '2/model.onnx'), withMetadata(IRIS, 'modelfn.example', JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] })));
    expect((await resolve(dir)).versions[1].example).toEqual({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
  });

  it('digests what the model documents itself with the declaration', async () => {
    const dir = folder({ 'model.onnx': DIGITS });
    const built = await resolveFunction(dir, {}, file(dir), config);
    expect(built.example).toBeDefined();
    expect(built.checkedDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(built.checkedDigest).not.toBe(declarationSnapshot({})!.digest);
  });
});
