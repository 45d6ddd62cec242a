/**
 * The `scale` declaration: accepted shapes, defaults, and the one-line errors naming the file and
 * the field when it and `replicas` disagree.
 */
import { describe, expect, it } from 'vitest';
import { resolveDeclaration } from './check.ts';
import { declarationSnapshot, DeclarationError } from './define.ts';

const FILE = 'functions/sleepy/function.ts';
const config = { bodyLimit: 10 * 1024 * 1024, timeoutMs: 30_000 };
const resolve = (declaration: object) => resolveDeclaration(declaration, { dir: '/nowhere/sleepy', folderName: 'sleepy', declarationFile: FILE }, config);
const problem = (declaration: object) => {
  try {
    resolve(declaration);
  } catch (err) {
    expect(err).toBeInstanceOf(DeclarationError);
    return (err as Error).message;
  }
  throw new Error('the declaration was accepted');
};

describe('scale in a declaration', () => {
  it('leaves a function without scale running its replicas as today', () => {
    expect(resolve({}).scale).toBeUndefined();
    expect(resolve({ replicas: 3 })).toMatchObject({ replicas: 3, scale: undefined });
  });

  it('accepts exactly the two shapes of the issue, with the defaults filled in', () => {
    expect(resolve({ scale: { min: 0, idleSeconds: 3 } })).toMatchObject({
      replicas: 1,
      scale: { min: 0, max: 1, idleSeconds: 3, wake: 'start', concurrency: 32 },
    });
    expect(resolve({ scale: { min: 0, idleSeconds: 3, wake: 'unpause' } }).scale).toEqual({ min: 0, max: 1, idleSeconds: 3, wake: 'unpause', concurrency: 32 });
  });

  it('starts min replicas when replicas is not declared, and takes a declared concurrency target', () => {
    expect(resolve({ scale: { min: 2, max: 4 } })).toMatchObject({ replicas: 2, scale: { min: 2, max: 4, idleSeconds: 300, wake: 'start' } });
    expect(resolve({ replicas: 2, scale: { max: 5, concurrency: 4 } }).scale).toMatchObject({ min: 0, max: 5, concurrency: 4 });
    expect(resolve({ batching: { enabled: false }, scale: {} }).scale!.concurrency).toBe(8);
  });

  it('refuses bad values with one line naming the file and the field', () => {
    expect(problem({ scale: { min: -1 } })).toBe(`${FILE}: scale.min: too small: expected number to be >=0`);
    expect(problem({ scale: { idleSeconds: 0 } })).toMatch(new RegExp(`^${FILE}: scale.idleSeconds: `));
    expect(problem({ scale: { idleSeconds: 2.5 } })).toMatch(new RegExp(`^${FILE}: scale.idleSeconds: `));
    expect(problem({ scale: { wake: 'thaw' } })).toMatch(new RegExp(`^${FILE}: scale.wake: .*"start"|"unpause"`));
    expect(problem({ scale: { min: 0, idle: 3 } })).toMatch(new RegExp(`^${FILE}: scale: .*idle`));
    expect(problem({ scale: { max: 0 } })).toMatch(new RegExp(`^${FILE}: scale.max: `));
    for (const message of [problem({ scale: { min: -1 } }), problem({ scale: { wake: 1 } })]) expect(message).not.toContain('\n');
  });

  it('refuses scale and replicas that disagree', () => {
    expect(problem({ scale: { min: 3, max: 2 } })).toBe(`${FILE}: scale.min: must be at most scale.max (2), got 3`);
    expect(problem({ replicas: 1, scale: { min: 2, max: 4 } })).toBe(`${FILE}: replicas: must be at least scale.min (2), got 1`);
    expect(problem({ replicas: 3, scale: { max: 2 } })).toBe(`${FILE}: scale.max: must be at least replicas (3), got 2`);
  });
});

const digest = (declaration: unknown) => declarationSnapshot(declaration)?.digest;

describe('declarationSnapshot', () => {
  it('digests the same data the same and differs when a check of it could', () => {
    const routes = () => {};
    const base = { replicas: 2, labels: ['a', 'b'], limits: { timeoutMs: 5000 }, routes };
    expect(digest({ ...base })).toBe(digest({ replicas: 2, labels: ['a', 'b'], limits: { timeoutMs: 5000 }, routes: () => 1 }));
    const others = [
      { ...base, replicas: '2' },
      { ...base, replicas: 3 },
      { ...base, labels: ['a', 'b', 'c'] },
      { ...base, limits: { timeoutMs: 5000, maxQueue: 1 } },
      { ...base, routes: 'not a function' },
      { ...base, extra: undefined },
      { ...base, replicas: Number.NaN },
      { labels: ['a', 'b'], replicas: 2, limits: { timeoutMs: 5000 }, routes },
    ];
    const digests = new Set([digest(base), ...others.map((d) => digest(d))]);
    expect(digests.size).toBe(others.length + 1);
    expect(digest(undefined)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('copies the data once: what is digested is what is used, whatever the original does later', () => {
    const routes = () => {};
    const original = { replicas: 2, auth: { apiKeys: 'keys' }, labels: ['a'], routes };
    const snapshot = declarationSnapshot(original)!;
    original.auth.apiKeys = 'other';
    original.labels.push('b');
    expect(snapshot.data).toEqual({ replicas: 2, auth: { apiKeys: 'keys' }, labels: ['a'], routes });
    expect((snapshot.data as { routes: unknown }).routes).toBe(routes);
    // A key named __proto__ stays a key of the copy (and a problem zod can name).
    const odd = declarationSnapshot(JSON.parse('{"__proto__": {"replicas": 0}}'))!;
    expect(Object.keys(odd.data as object)).toEqual(['__proto__']);
  });

  it('is undefined for what is not plain data, so that it is always checked', () => {
    expect(declarationSnapshot({ when: new Date(0) })).toBeUndefined();
    expect(declarationSnapshot({ labels: new Set(['a']) })).toBeUndefined();
    expect(declarationSnapshot({ replicas: 1n })).toBeUndefined();
    expect(declarationSnapshot(Object.defineProperty({}, 'replicas', { value: 0, enumerable: false }))).toBeUndefined();
    let n = 1;
    expect(declarationSnapshot({ get replicas() { return n--; } })).toBeUndefined();
    expect(declarationSnapshot(new Proxy({ replicas: 1 }, {}))).toBeUndefined();
    expect(declarationSnapshot({ [Symbol('x')]: 1 })).toBeUndefined();
    // eslint-disable-next-line no-sparse-arrays
    expect(declarationSnapshot({ labels: ['a', , 'c'] })).toBeUndefined();
    expect(declarationSnapshot({ labels: Object.assign(['a'], { extra: 1 }) })).toBeUndefined();
    let deep: object = {};
    for (let i = 0; i < 100; i++) deep = { deep };
    expect(declarationSnapshot(deep)).toBeUndefined();
  });
});
