/**
 * Property-based fuzzing of the protocol and predict routes (fast-check): thousands of generated
 * requests, valid ones and valid ones with one or more fields corrupted, in JSON and binary form,
 * against every example function and the datatypes fixture, in process and over real HTTP.
 *
 * Every answer must be 200 (the request happened to be valid) or a 4xx JSON `{"error": string}`;
 * never a 5xx, never a thrown exception; the process stays up and its memory stays bounded.
 *
 * Deterministic: the seed is fixed (override with FUZZ_SEED=<n>); a failure prints the seed, the
 * path and the shrunk counterexample. FUZZ_RUNS=<factor> scales the number of runs;
 * FUZZ_LOG=<file> writes one line per request (category, target, status, features, answer).
 */
import { appendFileSync } from 'node:fs';
import { METHODS as HTTP_METHODS, request as httpRequest, Agent } from 'node:http';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBinary, nest, FIXTURES, memoryLogger, openDeclared, openFunctionDir, postJson } from '../testing/index.ts';
import { startServerProcess, type ServerProcess } from '../testing/process.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 20_260_001);
const SCALE = Number(process.env.FUZZ_RUNS ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));

/** `arb` one time in `oneIn`, null otherwise. */
const sometimes = <T>(arb: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });

// ---------------------------------------------------------------------------------------------
// Requests and the invariant every response must satisfy
// ---------------------------------------------------------------------------------------------

interface Req {
  category: string;
  target: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

const encoder = new TextEncoder();
const utf8 = (s: string) => encoder.encode(s);

function describeReq(r: Req): string {
  const body = r.body === undefined ? 'none' : `${r.body.length} bytes: ${JSON.stringify(Buffer.from(r.body.subarray(0, 300)).toString('latin1'))}`;
  const headers = Object.entries(r.headers).map(([k, v]) => `${k}: ${v.length > 80 ? `${JSON.stringify(v.slice(0, 80))}... (${v.length} chars)` : JSON.stringify(v)}`);
  return `[${r.category}/${r.target}] ${r.method} ${r.path.length > 200 ? `${r.path.slice(0, 200)}...` : r.path} {${headers.join('; ')}} body ${body}`;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** What a request exercises, for the FUZZ_LOG debug log (counts per feature). */
function features(r: Req): string[] {
  const out: string[] = [];
  const body = r.body ? Buffer.from(r.body) : Buffer.alloc(0);
  const text = body.toString('latin1');
  const type = r.headers['Content-Type'];
  if (type === undefined) out.push('no-content-type');
  else if (!/^\s*application\/json\s*(;|$)/i.test(type) && !/^application\/octet-stream/i.test(type)) out.push('odd-content-type');
  if (Object.values(r.headers).some((v) => v.length >= 1024)) out.push('huge-header');
  const length = r.headers['Inference-Header-Content-Length'];
  if (length !== undefined) out.push(r.category === 'binary-infer' && /^\d+$/.test(length) && Number(length) > 0 && Number(length) <= body.length ? 'header-length' : 'header-length-invalid');
  if (r.body) {
    try {
      strictUtf8.decode(r.category === 'binary-infer' && length !== undefined ? body.subarray(0, Math.max(0, Math.min(body.length, Number(length) || 0))) : body);
    } catch {
      out.push('invalid-utf8');
    }
  }
  if (/\[{100}|(\{"a":){100}/.test(text)) out.push('deep-nesting');
  if (/[:,\[]\s*(-?Infinity|NaN|-?1e309|1e400000)\b/.test(text)) out.push('nan-infinity-1e309');
  if (/"shape":\[[^\]]*(1000000000000|-\d|\d\.\d|"|null|true|\[|\{|9007199254740992|4294967296)/.test(text)) out.push('bad-shape');
  if (/"binary_data_size":(-|"|null|true|\[|\{|\d+\.|900719925474099[2-9])/.test(text)) out.push('bad-binary-size');
  if (/"data":[^}]*"parameters":\{"binary_data_size"/.test(text)) out.push('data-and-binary-size');
  if (body.length === 0 && r.body) out.push('empty-body');
  return out;
}

/** Gives fast-check a short, readable counterexample instead of a 100 kB dump. */
function req(r: Req): Req {
  return Object.defineProperty(r, fc.toStringMethod, { value: () => describeReq(r), enumerable: false });
}

interface Outcome { status: number; contentType: string | null; body: Buffer; headerLength: string | null }

/** The statuses seen, by category, for the report at the end. */
const STATS = new Map<string, Map<number, number>>();
function record(category: string, status: number): void {
  const byStatus = STATS.get(category) ?? new Map<number, number>();
  byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  STATS.set(category, byStatus);
}

/** Throws, naming the request, unless the response is a 200 that parses or a 4xx JSON error. */
function verify(r: Req, o: Outcome): void {
  if (process.env.FUZZ_LOG) appendFileSync(process.env.FUZZ_LOG, `${r.category}\t${r.target}\t${o.status}\t${features(r).join(',')}\t${o.body.subarray(0, 160).toString('utf8')}\n`);
  const fail = (why: string): never => {
    throw new Error(`${why}\n  request: ${describeReq(r)}\n  response: ${o.status} ${o.contentType} ${JSON.stringify(o.body.subarray(0, 300).toString('utf8'))}`);
  };
  record(r.category, o.status);
  if (o.status >= 500) fail(`status ${o.status}`);
  if (o.status !== 200 && (o.status < 400 || o.status > 499)) fail(`unexpected status ${o.status}`);
  if (r.method === 'HEAD') return;
  if (o.status !== 200) {
    if (!o.contentType?.includes('application/json')) fail('a 4xx without a JSON content type');
    let error: unknown;
    try {
      error = (JSON.parse(o.body.toString('utf8')) as { error?: unknown }).error;
    } catch {
      fail('a 4xx whose body is not JSON');
    }
    if (typeof error !== 'string' || error.length === 0) fail('a 4xx without a string "error"');
    // A message is read by a person: it names the problem, it does not echo a whole request back.
    if ((error as string).length > 1000) fail(`a ${(error as string).length}-character error message`);
    if (/internal server error|stack|at .*\.ts:\d+/i.test(error as string)) fail('an error message with internals');
    return;
  }
  if (o.contentType?.startsWith('application/octet-stream')) {
    const length = Number(o.headerLength);
    if (!Number.isSafeInteger(length) || length <= 0 || length > o.body.length) fail('a binary 200 with a bad Inference-Header-Content-Length');
    checkOkJson(o.body.subarray(0, length).toString('utf8'), fail);
  } else if (o.contentType?.includes('application/json') || o.contentType?.startsWith('text/plain')) {
    checkOkJson(o.body.toString('utf8'), fail);
  } else {
    fail(`a 200 with content type ${o.contentType}`);
  }
}

function checkOkJson(text: string, fail: (why: string) => never): void {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // /metrics answers Prometheus text.
    if (text.startsWith('# HELP')) return;
    fail('a 200 whose body does not parse');
  }
  const outputs = (body as { outputs?: { shape: number[]; data?: unknown[] }[] }).outputs;
  for (const out of outputs ?? []) {
    const count = out.shape.reduce((a, b) => a * b, 1);
    if (out.data !== undefined && out.data.length !== count) fail(`output data of ${out.data.length} values for shape [${out.shape}]`);
  }
}

/** Sends a request to an in-process app; a thrown exception is a failure, like a 5xx. */
async function sendInProcess(app: Hono, r: Req): Promise<Outcome> {
  let res: Response;
  try {
    res = await app.request(r.path, { method: r.method, headers: r.headers, body: r.body as BodyInit | undefined });
  } catch (err) {
    throw new Error(`app.request threw ${String(err)}\n  request: ${describeReq(r)}`);
  }
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    headerLength: res.headers.get('inference-header-content-length'),
    body: Buffer.from(await res.arrayBuffer()),
  };
}

// ---------------------------------------------------------------------------------------------
// Targets: the example functions and the datatypes fixture
// ---------------------------------------------------------------------------------------------

interface Spec { name: string; datatype: string; shape: number[] }
interface Meta { name: string; inputs: Spec[]; outputs: Spec[] }
interface Target { key: string; app: Hono; meta: Meta; logger: ReturnType<typeof memoryLogger> }
interface InputJson { name: string; datatype: string; shape: number[]; data: unknown[] }

const TARGETS: Target[] = [];
const DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'];

async function openTargets(): Promise<void> {
  if (TARGETS.length) return;
  const open = async (key: string, prepared: (logger: ReturnType<typeof memoryLogger>) => Promise<{ app: Hono }>) => {
    const logger = memoryLogger();
    const { app } = await prepared(logger);
    const meta = (await (await app.request(`/v2/models/${key}`)).json()) as Meta;
    TARGETS.push({ key, app, meta, logger });
  };
  await open('iris', (l) => openFunctionDir('functions/iris', {}, l));
  await open('vad', (l) => openFunctionDir('functions/vad', {}, l));
  await open('digits', (l) => openFunctionDir('functions/digits', {}, l));
  await open('datatypes', (l) => openDeclared(FIXTURES, { name: 'datatypes', model: 'datatypes.onnx' }, {}, l));
}

const target = (key: string) => TARGETS.find((t) => t.key === key)!;
const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------------------------
// Raw JSON tokens: what JSON.stringify cannot write (NaN, 1e309, 10 000 nested arrays...)
// ---------------------------------------------------------------------------------------------

/** A placeholder that `render` replaces with raw JSON text. */
const RAW = (token: string) => `\u0001RAW ${token}\u0001`;

function rawToken(token: string): string {
  const [kind, arg] = token.split(':');
  const n = Number(arg);
  switch (kind) {
    case 'deep': return '['.repeat(n) + ']'.repeat(n);
    case 'deepnum': return `${'['.repeat(n)}1${']'.repeat(n)}`;
    case 'deepobj': return `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    case 'digits': return `1${'0'.repeat(n)}`;
    case 'longstr': return `"${'x'.repeat(n)}"`;
    case 'wide': return `[${new Array(n).fill('7').join(',')}]`;
    default: return token;
  }
}

/** JSON text with the RAW placeholders substituted. */
function render(value: unknown): string {
  const text = JSON.stringify(value) ?? '';
  return text.replace(/"\\u0001RAW ([^"\\]*)\\u0001"/g, (_, token: string) => rawToken(token));
}

const depthArb = fc.oneof(fc.integer({ min: 2, max: 64 }), fc.constantFrom(1000, 10_000, 20_000, 100_000));
const rawArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e309', '-1e309', '1e-400', '-0', '0x10', '01', '+1', '.5', '1.', 'undefined', 'True', 'nul', "'x'", '1e400000') },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('deep', 'deepnum', 'deepobj'), depthArb).map(([k, n]) => `${k}:${n}`) },
  { weight: 1, arbitrary: fc.constantFrom('digits:400', 'longstr:50000', 'wide:20000', 'wide:3') },
).map(RAW);

// ---------------------------------------------------------------------------------------------
// Valid requests
// ---------------------------------------------------------------------------------------------

const FP32_MAX = 3.4028234663852886e38;
const SMALL_FLOATS = fc.oneof(fc.integer({ min: -10, max: 10 }), fc.double({ min: -100, max: 100, noNaN: true }));

function valueArb(datatype: string): fc.Arbitrary<unknown> {
  switch (datatype) {
    case 'BOOL': return fc.boolean();
    case 'UINT8': return fc.integer({ min: 0, max: 255 });
    case 'UINT16': return fc.integer({ min: 0, max: 65535 });
    case 'UINT32': return fc.integer({ min: 0, max: 4294967295 });
    case 'UINT64': return fc.maxSafeNat();
    case 'INT8': return fc.integer({ min: -128, max: 127 });
    case 'INT16': return fc.integer({ min: -32768, max: 32767 });
    case 'INT32': return fc.integer({ min: -2147483648, max: 2147483647 });
    case 'INT64': return fc.maxSafeInteger();
    case 'BYTES': return fc.oneof(fc.string({ unit: 'binary', maxLength: 8 }), fc.constantFrom('', 'héllo', '日本語', '😀'));
    // A float beyond its type's range is refused (it would become infinity): valid values lie within it.
    case 'FP16': return fc.oneof(SMALL_FLOATS, fc.double({ min: -65504, max: 65504, noNaN: true }));
    case 'FP32': return fc.oneof({ weight: 3, arbitrary: SMALL_FLOATS }, { weight: 1, arbitrary: fc.double({ min: -FP32_MAX, max: FP32_MAX, noNaN: true }) });
    default: return fc.oneof({ weight: 3, arbitrary: SMALL_FLOATS }, { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) });
  }
}

/** Deterministic filler for long tensors (a few hundred values generated one by one would be slow to shrink). */
function filled(datatype: string, n: number, seed: number): unknown[] {
  return Array.from({ length: n }, (_, i) => {
    const x = Math.sin(seed + i * 12.9898) * 0.5;
    return datatype === 'BOOL' ? x > 0 : datatype === 'BYTES' ? String(i) : datatype.startsWith('FP') ? x : Math.abs(Math.round(x * 100));
  });
}

function tensorArb(spec: Spec, shape: fc.Arbitrary<number[]>): fc.Arbitrary<InputJson> {
  return shape.chain((s) => {
    const n = count(s);
    const data = n <= 16
      ? fc.array(valueArb(spec.datatype), { minLength: n, maxLength: n })
      : fc.integer().map((seed) => filled(spec.datatype, n, seed));
    return data.map((d) => ({ name: spec.name, datatype: spec.datatype, shape: s, data: d }));
  });
}

/** Valid inputs for a model: dynamic dimensions 0..3 (vad: a real frame and state). */
function validInputsArb(t: Target): fc.Arbitrary<InputJson[]> {
  if (t.key === 'vad') {
    return fc.tuple(fc.constantFrom(16000, 8000), fc.integer({ min: 1, max: 2 }), fc.integer()).map(([sr, batch, seed]) => {
      const samples = sr === 16000 ? 576 : 288;
      return [
        { name: 'input', datatype: 'FP32', shape: [batch, samples], data: filled('FP32', batch * samples, seed) },
        { name: 'state', datatype: 'FP32', shape: [2, batch, 128], data: filled('FP32', 2 * batch * 128, seed + 1) },
        { name: 'sr', datatype: 'INT64', shape: [], data: [sr] },
      ];
    });
  }
  return fc.tuple(...t.meta.inputs.map((spec) => tensorArb(spec, fc.tuple(...spec.shape.map((d) => (d >= 0 ? fc.constant(d) : fc.integer({ min: 0, max: 3 })))))));
}

/** The `outputs` of a request: absent, or some outputs with binary_data and classification. */
function outputsArb(t: Target, binaryAllowed: boolean): fc.Arbitrary<unknown[] | undefined> {
  const names = t.meta.outputs.map((o) => o.name);
  const one = fc.record({
    name: fc.constantFrom(...names),
    parameters: fc.record({
      classification: fc.integer({ min: 1, max: 4 }),
      binary_data: binaryAllowed ? fc.boolean() : fc.constant(false),
    }, { requiredKeys: [] }),
  }, { requiredKeys: ['name'] });
  return sometimes(fc.uniqueArray(one, { maxLength: names.length, selector: (o) => o.name }), 2).map((v) => v ?? undefined);
}

// ---------------------------------------------------------------------------------------------
// Corruptions
// ---------------------------------------------------------------------------------------------

const weirdScalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, '', '1', 'NaN', '\ud800', -1, 1.5, 1e20, 2 ** 53, 2 ** 64, -(2 ** 63), 1e308, -1e308, 5e-324, {}, [], [1]),
  fc.string({ maxLength: 6 }),
  rawArb,
);
const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: weirdScalar },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom('x'.repeat(10_000), RAW('longstr:100000')) },
);
const weirdDim: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: -3, max: 5 }) },
  { weight: 3, arbitrary: fc.constantFrom(1e12, -1e12, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 63, 1e308, 0.5, 1.5, -0.5, 3.0000001) },
  { weight: 2, arbitrary: fc.constantFrom('4', '1', 'x', null, true, [], [4], {}) },
  { weight: 1, arbitrary: fc.constantFrom(RAW('NaN'), RAW('Infinity'), RAW('-Infinity'), RAW('1e309'), RAW('-0'), RAW('deepnum:10000')) },
);
const weirdShape: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.array(weirdDim, { maxLength: 6 }) },
  { weight: 3, arbitrary: fc.constantFrom(
    [1e12, 1e12], [-1, 4], [-1, 3], [1.5, 4], ['1', '4'], [null, 4], [], [0], [0, 0], [2 ** 31, 3], [2 ** 32, 4],
    [2 ** 53 - 1, 2 ** 53 - 1], [1e308, 1e308], [2 ** 53 - 1, 0], [0, 2 ** 53 - 1], [2 ** 31, 0], [0, 2 ** 31], [4294967296, 0],
    new Array(100).fill(2), new Array(64).fill(1), new Array(30).fill(2 ** 53 - 1).concat([0]), [1, 4, 1], [4],
  ) },
  { weight: 2, arbitrary: weirdValue },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('deep', 'deepnum', 'deepobj'), depthArb).map(([k, n]) => RAW(`${k}:${n}`)) },
);

type Mutation =
  | { kind: 'field'; input: number; field: string; value: unknown }
  | { kind: 'element'; input: number; index: number; value: unknown }
  | { kind: 'length'; input: number; delta: number }
  | { kind: 'nesting'; input: number; how: 'nested' | 'wrapped' | 'ragged' | 'deep' }
  | { kind: 'drop' | 'duplicate'; input: number }
  | { kind: 'extra'; value: unknown }
  | { kind: 'root'; field: string; value: unknown }
  | { kind: 'replace'; value: unknown };

function mutationArb(t: Target): fc.Arbitrary<Mutation> {
  const names = t.meta.inputs.map((i) => i.name);
  const input = fc.nat({ max: 99 });
  const field = <F extends string>(f: F, value: fc.Arbitrary<unknown>) => fc.record({ kind: fc.constant('field' as const), input, field: fc.constant(f), value });
  const outputs = t.meta.outputs.map((o) => o.name);
  const weirdOutputs = fc.oneof(
    weirdValue,
    fc.array(fc.record({
      name: fc.oneof(fc.constantFrom(...outputs, 'no_such_output', outputs[0].toUpperCase()), weirdValue),
      parameters: fc.oneof(weirdValue, fc.record({ classification: fc.oneof(weirdValue, fc.integer({ min: -2, max: 1e9 })), binary_data: weirdValue }, { requiredKeys: [] })),
    }, { requiredKeys: [] }), { maxLength: 4 }),
  );
  return fc.oneof(
    field('name', fc.oneof(weirdValue, fc.constantFrom(...names.map((n) => n.toUpperCase()), 'no_such_input', ''))),
    field('datatype', fc.oneof(fc.constantFrom(...DATATYPES, ...DATATYPES.map((d) => d.toLowerCase()), 'FP8', 'STRING', 'float32', 'FP32 '), weirdValue)),
    field('shape', weirdShape),
    field('data', fc.oneof(weirdValue, fc.array(weirdScalar, { maxLength: 8 }), fc.constant([]))),
    field('parameters', fc.oneof(weirdValue, fc.record({ binary_data_size: fc.oneof(weirdScalar, fc.nat({ max: 64 })) }))),
    fc.record({ kind: fc.constant('element' as const), input, index: fc.nat({ max: 999 }), value: weirdScalar }),
    fc.record({ kind: fc.constant('length' as const), input, delta: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(-1000, 1000, 100_000)).filter((d) => d !== 0) }),
    fc.record({ kind: fc.constant('nesting' as const), input, how: fc.constantFrom('nested' as const, 'wrapped' as const, 'ragged' as const, 'deep' as const) }),
    fc.record({ kind: fc.constantFrom('drop' as const, 'duplicate' as const), input }),
    fc.record({ kind: fc.constant('extra' as const), value: fc.oneof(weirdValue, fc.record({ name: fc.string({ maxLength: 4 }), datatype: fc.constantFrom(...DATATYPES), shape: weirdShape, data: weirdValue }, { requiredKeys: [] })) }),
    fc.record({ kind: fc.constant('root' as const), field: fc.constantFrom('id', 'inputs', 'parameters', 'extra'), value: weirdValue }),
    fc.record({ kind: fc.constant('root' as const), field: fc.constant('outputs'), value: weirdOutputs }),
    fc.record({ kind: fc.constant('root' as const), field: fc.constant('parameters'), value: fc.record({ binary_data_output: weirdValue }) }),
    fc.record({ kind: fc.constant('replace' as const), value: weirdValue }),
  );
}

type Body = { inputs: Record<string, unknown>[]; [key: string]: unknown };

function applyMutation(body: unknown, m: Mutation): unknown {
  // An earlier corruption may have replaced the root or 'inputs': later ones then leave it be.
  if (typeof body !== 'object' || body === null || !Array.isArray((body as Body).inputs)) return body;
  return mutate(body as Body, m);
}

function mutate(body: Body, m: Mutation): unknown {
  if (m.kind === 'replace') return m.value;
  if (m.kind === 'root') return { ...body, [m.field]: m.value };
  if (m.kind === 'extra') return { ...body, inputs: [...body.inputs, m.value] };
  const inputs = [...body.inputs];
  if (inputs.length === 0) return body;
  const i = m.input % inputs.length;
  const x = { ...inputs[i] };
  switch (m.kind) {
    case 'drop': inputs.splice(i, 1); break;
    case 'duplicate': inputs.push(x); break;
    case 'field': x[m.field] = m.value; inputs[i] = x; break;
    case 'element': {
      if (!Array.isArray(x.data) || x.data.length === 0) return body;
      const data = [...(x.data as unknown[]).flat(Infinity)];
      data[m.index % data.length] = m.value;
      x.data = data;
      inputs[i] = x;
      break;
    }
    case 'length': {
      if (!Array.isArray(x.data)) return body;
      const data = (x.data as unknown[]).flat(Infinity);
      // Padding repeats a plain value: repeating a RAW token (100 000 characters) would not fit in a string.
      const pad = typeof data[0] === 'string' && data[0].startsWith('\u0001') ? 0 : data[0] ?? 0;
      x.data = m.delta < 0 ? data.slice(0, Math.max(0, data.length + m.delta)) : data.concat(new Array(m.delta).fill(pad));
      inputs[i] = x;
      break;
    }
    case 'nesting': {
      if (!Array.isArray(x.data) || !Array.isArray(x.shape)) return body;
      const flat = (x.data as unknown[]).flat(Infinity);
      const shape = x.shape as number[];
      // Only a sane shape can be nested to (a corrupted one may be [1e12]).
      if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0 && d <= 10_000) || count(shape) > 10_000) return body;
      if (m.how === 'nested') x.data = nest(flat, shape);
      else if (m.how === 'wrapped') x.data = [nest(flat, shape)];
      else if (m.how === 'deep') x.data = [RAW('deepnum:10000'), ...flat.slice(1)];
      else {
        const nested = nest(flat, shape);
        x.data = Array.isArray(nested) && Array.isArray(nested[0]) ? [[...nested[0], ...nested[0]], ...nested.slice(1)] : [flat];
      }
      inputs[i] = x;
      break;
    }
  }
  return { ...body, inputs };
}

// Bytes: invalid UTF-8, truncation, a byte order mark, trailing garbage.
const INVALID_UTF8 = [[0xff], [0xfe], [0x80], [0xc0, 0x80], [0xc3], [0xe6, 0x97], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x00]];

type ByteMutation =
  | { kind: 'none' }
  | { kind: 'truncate'; at: number }
  | { kind: 'invalid'; at: number; bytes: number[] }
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'bom' }
  | { kind: 'garbage'; bytes: Uint8Array }
  | { kind: 'empty' };

const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('invalid' as const), at: fc.nat(), bytes: fc.constantFrom(...INVALID_UTF8) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'bom' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'empty' as const }) },
);

function applyBytes(bytes: Uint8Array, m: ByteMutation): Uint8Array {
  const at = (n: number) => (bytes.length ? n % bytes.length : 0);
  switch (m.kind) {
    case 'none': return bytes;
    case 'truncate': return bytes.subarray(0, at(m.at));
    case 'invalid': return Buffer.concat([bytes.subarray(0, at(m.at)), Buffer.from(m.bytes), bytes.subarray(at(m.at))]);
    case 'flip': {
      const out = Buffer.from(bytes);
      if (out.length) out[at(m.at)] ^= m.xor;
      return out;
    }
    case 'bom': return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]);
    case 'garbage': return Buffer.concat([bytes, m.bytes]);
    case 'empty': return new Uint8Array(0);
  }
}

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', ' application/json ;', 'application/json; charset=latin1'];
const ODD_TYPES = [
  'text/plain', 'application/octet-stream', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/json-patch+json',
  'application/jsonp', '*/*', 'json', ';', ' ', 'application/json\u00e9', 'application/\u00ff\u00fe', 'audio/wav', 'text/html; charset=utf-8',
];
/** A Content-Type header: JSON most of the time; missing, odd, or absurd otherwise. */
const contentTypeArb: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...JSON_TYPES) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.constantFrom(...ODD_TYPES) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 30 }).map(printable) },
);

/** A header value Fetch will carry: printable latin-1 (bytes that are invalid UTF-8 included). */
function printable(s: string): string {
  return s.replace(/[^\t\x20-\x7e\x80-\xff]/g, 'x').trim();
}

/** Header values of tens of kilobytes; in process there is no header limit, so only 5xx matter. */
const hugeHeadersArb: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.record({
    name: fc.constantFrom('X-Huge', 'X-Request-Id', 'Content-Type', 'Inference-Header-Content-Length', 'Accept', 'Cookie', 'Authorization'),
    size: fc.constantFrom(1024, 16 * 1024, 40 * 1024, 64 * 1024),
    fill: fc.constantFrom('a', '\u00e9', '9', ' x', '\u00ff'),
  }).map(({ name, size, fill }) => ({ [name]: fill.repeat(Math.ceil(size / fill.length)).slice(0, size) })) },
);

function inferPath(t: Target, versioned: boolean): string {
  return versioned ? `/v2/models/${t.meta.name}/versions/1/infer` : `/v2/models/${t.meta.name}/infer`;
}

// ---------------------------------------------------------------------------------------------
// The request generators, one per category
// ---------------------------------------------------------------------------------------------

/** JSON inference requests: valid, then 0-3 corruptions of fields, then maybe of bytes and headers. */
function jsonInferArb(t: Target): fc.Arbitrary<Req> {
  const mutations = fc.oneof({ weight: 3, arbitrary: fc.constant([] as Mutation[]) }, { weight: 7, arbitrary: fc.array(mutationArb(t), { minLength: 1, maxLength: 3 }) });
  return fc.tuple(
    validInputsArb(t), fc.boolean(), outputsArb(t, false), sometimes(fc.string({ maxLength: 12 }), 2), mutations, byteMutationArb, contentTypeArb,
    sometimes(fc.constantFrom('0', '-1', '5', 'abc', '99999999', ''), 12), hugeHeadersArb, fc.boolean(),
  ).map(([inputs, nested, outputs, id, muts, bm, type, headerLength, huge, versioned]) => {
    let body: unknown = {
      ...(id === null ? {} : { id }),
      inputs: inputs.map((x) => (nested ? { ...x, data: nest(x.data, x.shape) } : x)),
      ...(outputs ? { outputs } : {}),
    };
    for (const m of muts) body = applyMutation(body, m);
    const headers: Record<string, string> = { ...huge };
    if (type !== undefined) headers['Content-Type'] = type;
    if (headerLength !== null) headers['Inference-Header-Content-Length'] = headerLength;
    return req({ category: 'json-infer', target: t.key, method: 'POST', path: inferPath(t, versioned), headers, body: applyBytes(utf8(render(body)), bm) });
  });
}

/** Byte offsets inside multi-byte UTF-8 sequences (continuation bytes). */
function insideUtf8(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) if ((bytes[i] & 0xc0) === 0x80) out.push(i);
  return out;
}

type HeaderLie = 'true' | 'zero' | 'negative' | 'minus1' | 'plus1' | 'body' | 'past' | 'alpha' | 'empty' | 'float' | 'exp' | 'hex' | 'huge' | 'twice' | 'utf8' | 'spaces' | 'plus' | 'missing';
type SizeLie = { kind: 'true' } | { kind: 'delta'; delta: number } | { kind: 'value'; value: unknown };

/** Binary-extension requests: some inputs binary, then lies in the header, sizes and bytes. */
function binaryInferArb(t: Target): fc.Arbitrary<Req> {
  const lie = fc.oneof(
    { weight: 10, arbitrary: fc.constant('true' as HeaderLie) },
    { weight: 6, arbitrary: fc.constantFrom<HeaderLie>('zero', 'negative', 'minus1', 'plus1', 'body', 'past', 'alpha', 'empty', 'float', 'exp', 'hex', 'huge', 'twice', 'utf8', 'spaces', 'plus', 'missing') },
  );
  const sizeLie: fc.Arbitrary<SizeLie> = fc.oneof(
    { weight: 10, arbitrary: fc.constant({ kind: 'true' as const }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('delta' as const), delta: fc.constantFrom(-9, -4, -1, 1, 3, 8, 1e6) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('value' as const), value: fc.oneof(weirdScalar, fc.constantFrom(0, 2 ** 53, 2 ** 32, 1e308, -8)) }) },
  );
  const bytesKind = fc.oneof(
    { weight: 8, arbitrary: fc.constant({ kind: 'valid' as const }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 40 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('badUtf8' as const), bytes: fc.constantFrom(...INVALID_UTF8) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('prefix' as const), len: fc.constantFrom(0xffffffff, 0x80000000, 1000, 5) }) },
  );
  const mutations = fc.oneof({ weight: 6, arbitrary: fc.constant([] as Mutation[]) }, { weight: 2, arbitrary: fc.array(mutationArb(t), { minLength: 1, maxLength: 2 }) });
  return fc.tuple(
    validInputsArb(t), fc.array(fc.boolean(), { minLength: 13, maxLength: 13 }), lie, sizeLie,
    bytesKind, fc.nat(), fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -16, max: 16 }) }),
    fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom('application/octet-stream', 'application/octet-stream; charset=binary', 'APPLICATION/OCTET-STREAM') },
      { weight: 2, arbitrary: fc.constantFrom<string | undefined>('application/json', undefined, 'text/plain', 'application/x-binary') },
    ),
    fc.tuple(outputsArb(t, true), sometimes(fc.oneof({ weight: 4, arbitrary: fc.boolean() }, { weight: 1, arbitrary: weirdScalar }), 3), sometimes(fc.constantFrom('é日本語😀', 'plain', '\u00ff'), 2)),
    mutations, fc.oneof({ weight: 10, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }), fc.nat(),
  ).map(([inputs, asBinary, lieKind, sizeLie, bytesKind, pick, both, tail, type, [outputs, binaryOut, id], muts, badHeaderUtf8, at]) => {
    const chunks: Uint8Array[] = [];
    const header: Body = { inputs: [] };
    if (id !== null) header.id = id;
    inputs.forEach((x, i) => {
      const binary = asBinary[i] || i === pick % inputs.length;
      if (!binary) {
        header.inputs.push({ ...x });
        return;
      }
      let bytes: Uint8Array = encodeBinary(x.datatype, x.data);
      if (x.datatype === 'BYTES' && bytesKind.kind !== 'valid') {
        if (bytesKind.kind === 'random') bytes = bytesKind.bytes;
        else if (bytesKind.kind === 'badUtf8') {
          const len = Buffer.alloc(4);
          len.writeUInt32LE(bytesKind.bytes.length);
          bytes = Buffer.concat([len, Buffer.from(bytesKind.bytes), bytes]);
        } else {
          const len = Buffer.alloc(4);
          len.writeUInt32LE(bytesKind.len);
          bytes = Buffer.concat([len, bytes]);
        }
      }
      // The size lie (if any) goes to the input `pick` names; the others tell the truth.
      const s: SizeLie = i === pick % inputs.length ? sizeLie : { kind: 'true' };
      const size = s.kind === 'true' ? bytes.length : s.kind === 'delta' ? bytes.length + s.delta : s.value;
      const { data, ...rest } = x;
      header.inputs.push({ ...(both ? { data } : rest), parameters: { binary_data_size: size } });
      chunks.push(bytes);
    });
    if (outputs) header.outputs = outputs;
    if (binaryOut !== null) header.parameters = { binary_data_output: binaryOut };
    let body: unknown = header;
    for (const m of muts) body = applyMutation(body, m);
    let json = Buffer.from(render(body));
    if (badHeaderUtf8) json = Buffer.concat([json.subarray(0, at % (json.length + 1)), Buffer.from([0xff]), json.subarray(at % (json.length + 1))]);
    let binary = Buffer.concat(chunks);
    if (tail < 0) binary = binary.subarray(0, Math.max(0, binary.length + tail));
    if (tail > 0) binary = Buffer.concat([binary, Buffer.alloc(tail, 0xab)]);
    const full = Buffer.concat([json, binary]);
    const inside = insideUtf8(json);
    const lies: Record<HeaderLie, string | undefined> = {
      true: String(json.length), zero: '0', negative: '-5', minus1: String(json.length - 1), plus1: String(json.length + 1),
      body: String(full.length), past: String(full.length + 1), alpha: 'abc', empty: '', float: `${json.length}.5`, exp: '1e2',
      hex: `0x${json.length.toString(16)}`, huge: '99999999999999999999999', twice: `${json.length}, ${json.length}`,
      utf8: String(inside.length ? inside[at % inside.length] : json.length - 1), spaces: ` ${json.length} `, plus: `+${json.length}`, missing: undefined,
    };
    const headers: Record<string, string> = {};
    if (type !== undefined) headers['Content-Type'] = type;
    if (lies[lieKind] !== undefined) headers['Inference-Header-Content-Length'] = lies[lieKind]!;
    return req({ category: 'binary-infer', target: t.key, method: 'POST', path: inferPath(t, false), headers, body: full });
  });
}

/** `/predict` requests: valid instances, then corruptions of instances, rows, elements and bytes. */
function predictArb(t: Target): fc.Arbitrary<Req> {
  const spec = t.meta.inputs[0];
  const width = spec.shape.length === 2 && spec.shape[1] > 0 ? spec.shape[1] : 4;
  const instances = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer()).map(([rows, seed]) => nest(filled(spec.datatype, rows * width, seed), [rows, width]) as unknown[]);
  type PredictMutation = { kind: 'instances' | 'row' | 'element' | 'root' | 'replace' | 'ragged' | 'rank' | 'deep'; at: number; value: unknown };
  const mutation: fc.Arbitrary<PredictMutation> = fc.record({
    kind: fc.constantFrom('instances', 'row', 'element', 'root', 'replace', 'ragged', 'rank', 'deep'),
    at: fc.nat(),
    value: fc.oneof(weirdValue, weirdScalar),
  });
  return fc.tuple(
    instances, fc.oneof({ weight: 3, arbitrary: fc.constant([] as PredictMutation[]) }, { weight: 7, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 2 }) }),
    byteMutationArb, contentTypeArb, hugeHeadersArb, depthArb,
  ).map(([rows, muts, bm, type, huge, depth]) => {
    let body: unknown = { instances: rows };
    for (const m of muts) {
      const b = (typeof body === 'object' && body !== null ? body : {}) as { instances?: unknown };
      const list = Array.isArray(b.instances) ? [...b.instances] : [];
      const i = list.length ? m.at % list.length : 0;
      switch (m.kind) {
        case 'instances': body = { ...b, instances: m.value }; break;
        case 'root': body = { ...b, [`k${m.at % 3}`]: m.value }; break;
        case 'replace': body = m.value; break;
        case 'row': list[i] = m.value; body = { instances: list }; break;
        case 'element': {
          const row = Array.isArray(list[i]) ? [...(list[i] as unknown[])] : [];
          row[m.at % Math.max(1, row.length)] = m.value;
          list[i] = row;
          body = { instances: list };
          break;
        }
        case 'ragged': list[i] = Array.isArray(list[i]) ? (list[i] as unknown[]).slice(1) : [1]; body = { instances: list }; break;
        case 'rank': body = { instances: m.at % 2 ? list.flat() : list.map((r) => [r]) }; break;
        case 'deep': list[i] = RAW(`deepnum:${depth}`); body = { instances: list }; break;
      }
    }
    const headers: Record<string, string> = { ...huge };
    if (type !== undefined) headers['Content-Type'] = type;
    return req({ category: 'predict', target: t.key, method: 'POST', path: '/predict', headers, body: applyBytes(utf8(render(body)), bm) });
  });
}

/** A WAV-shaped body for vad's /segments: RIFF/WAVE with random fmt fields and chunk sizes. */
const wavArb: fc.Arbitrary<Uint8Array> = fc.record({
  format: fc.constantFrom(1, 3, 0xfffe, 0, 2),
  channels: fc.constantFrom(0, 1, 2, 7, 65535),
  rate: fc.constantFrom(0, 999, 8000, 16000, 44100, 384000, 384001, 4294967295),
  bits: fc.constantFrom(0, 8, 16, 24, 32, 64, 12),
  fmtSize: fc.constantFrom(16, 18, 40, 2, 0xffffffff),
  dataSize: fc.constantFrom(0, 1, 7, 64, 0xffffffff),
  data: fc.uint8Array({ maxLength: 600 }),
}).map(({ format, channels, rate, bits, fmtSize, dataSize, data }) => {
  const fmt = Buffer.alloc(8 + 16);
  fmt.write('fmt ', 0, 'latin1');
  fmt.writeUInt32LE(fmtSize, 4);
  fmt.writeUInt16LE(format, 8);
  fmt.writeUInt16LE(channels, 10);
  fmt.writeUInt32LE(rate, 12);
  fmt.writeUInt32LE(rate * channels * (bits / 8) >>> 0, 16);
  fmt.writeUInt16LE(((channels * bits) / 8) & 0xffff, 20);
  fmt.writeUInt16LE(bits, 22);
  const head = Buffer.alloc(8);
  head.write('data', 0, 'latin1');
  head.writeUInt32LE(dataSize, 4);
  const riff = Buffer.from('RIFF\0\0\0\0WAVE', 'latin1');
  return Buffer.concat([riff, fmt, head, data]);
});

/** Raw bodies: random bytes, random strings, random JSON, WAV-shaped bytes, to every POST route. */
function rawBodyArb(t: Target): fc.Arbitrary<Req> {
  const paths = [inferPath(t, false), '/predict', ...(t.key === 'iris' ? ['/species'] : []), ...(t.key === 'vad' ? ['/segments'] : [])];
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 512 }),
    fc.string({ unit: 'binary', maxLength: 200 }).map(utf8),
    fc.json({ maxDepth: 4 }).map(utf8),
    fc.tuple(fc.json({ maxDepth: 4 }), fc.nat()).map(([j, n]) => utf8(j).subarray(0, n % (j.length + 1))),
    fc.constant(new Uint8Array(0)),
    wavArb,
  );
  return fc.tuple(fc.constantFrom(...paths), body, fc.oneof(contentTypeArb, fc.constantFrom('audio/wav', 'application/octet-stream')), sometimes(fc.constantFrom('0', '1', '4', '-3', 'x', '100000', '2'), 3), hugeHeadersArb)
    .map(([path, b, type, headerLength, huge]) => {
      const headers: Record<string, string> = { ...huge };
      if (type !== undefined) headers['Content-Type'] = type;
      if (headerLength !== null) headers['Inference-Header-Content-Length'] = headerLength;
      return req({ category: 'raw-body', target: t.key, method: 'POST', path, headers, body: b });
    });
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PROPFIND', 'FOO'];

/** Methods and paths: every route with every method, unknown models, versions and odd encodings. */
function routeArb(t: Target): fc.Arbitrary<Req> {
  const name = t.meta.name;
  const paths = [
    '/v2', '/v2/health/live', '/v2/health/ready', `/v2/models/${name}`, `/v2/models/${name}/ready`, `/v2/models/${name}/infer`,
    `/v2/models/${name}/versions/1`, `/v2/models/${name}/versions/1/ready`, `/v2/models/${name}/versions/1/infer`, '/predict', '/metrics',
    `/v2/models/${name}/versions/2/infer`, '/v2/models/other/infer', `/v2/models/${name}/infer/extra`, `/v2/models/${name.toUpperCase()}/infer`,
    '/v2/models/', '/v2/models', '/', '//v2//models', `/v2/models/${name}/versions//infer`, `/v2/models/${name}/versions/%zz/infer`,
    `/v2/models/%ff%00/infer`, `/v2/models/${name}/versions/${'9'.repeat(400)}/infer`, `/${'a/'.repeat(2000)}`, '/predict/', '/PREDICT',
    `/v2/models/${name}/infer?x=%zz`, '/v2/models/..%2f..%2fetc%2fpasswd/infer',
  ];
  return fc.tuple(fc.constantFrom(...METHODS), fc.constantFrom(...paths), sometimes(fc.uint8Array({ maxLength: 64 }), 2), contentTypeArb)
    .map(([method, path, body, type]) => {
      const headers: Record<string, string> = {};
      if (type !== undefined) headers['Content-Type'] = type;
      return req({ category: 'routes', target: t.key, method, path, headers, body: method === 'GET' || method === 'HEAD' ? undefined : body ?? undefined });
    });
}

/** Shapes only: every kind of absurd dimension against every input, with data short, empty or long. */
function shapeArb(t: Target): fc.Arbitrary<Req> {
  return fc.tuple(validInputsArb(t), fc.nat(), weirdShape, fc.constantFrom('keep', 'empty', 'one', 'match'), contentTypeArb).map(([inputs, i, shape, data, type]) => {
    const x = inputs[i % inputs.length];
    const n = Array.isArray(shape) && shape.every((d) => typeof d === 'number') ? count(shape as number[]) : 1;
    const values = data === 'keep' ? x.data : data === 'empty' ? [] : data === 'one' ? x.data.slice(0, 1) : Number.isSafeInteger(n) && n >= 0 && n <= 10_000 ? new Array(n).fill(x.data[0] ?? 0) : x.data;
    inputs[i % inputs.length] = { ...x, shape: shape as number[], data: values };
    const headers: Record<string, string> = {};
    if (type !== undefined) headers['Content-Type'] = type;
    return req({ category: 'shapes', target: t.key, method: 'POST', path: inferPath(t, false), headers, body: utf8(render({ inputs })) });
  });
}

/** Deep nesting everywhere a value may appear: data, shape, id, parameters, outputs, instances, the root. */
function deepArb(t: Target): fc.Arbitrary<Req> {
  return fc.tuple(validInputsArb(t), fc.constantFrom('data', 'shape', 'name', 'datatype', 'parameters', 'element', 'id', 'outputs', 'inputs', 'root', 'instances', 'row', 'request-parameters'),
    fc.constantFrom('deep', 'deepnum', 'deepobj'), depthArb, fc.nat())
    .map(([inputs, where, kind, depth, i]) => {
      const deep = RAW(`${kind}:${depth}`);
      const x = { ...inputs[i % inputs.length] } as Record<string, unknown>;
      let body: unknown = { inputs };
      let path = inferPath(t, false);
      switch (where) {
        case 'root': body = deep; break;
        case 'id': case 'outputs': case 'inputs': body = { inputs, [where]: deep }; break;
        case 'request-parameters': body = { inputs, parameters: { binary_data_output: deep } }; break;
        case 'instances': path = '/predict'; body = { instances: deep }; break;
        case 'row': path = '/predict'; body = { instances: [deep, deep] }; break;
        case 'element': x.data = [deep, ...(x.data as unknown[]).slice(1)]; break;
        case 'parameters': x.parameters = { binary_data_size: deep }; break;
        default: x[where] = deep;
      }
      if (where === 'element' || where === 'parameters' || where === 'data' || where === 'shape' || where === 'name' || where === 'datatype') {
        body = { inputs: inputs.map((y, j) => (j === i % inputs.length ? x : y)) };
      }
      return req({ category: 'deep', target: t.key, method: 'POST', path, headers: { 'Content-Type': 'application/json' }, body: utf8(render(body)) });
    });
}

const GENERATORS: Record<string, (t: Target) => fc.Arbitrary<Req>> = {
  'json-infer': jsonInferArb,
  'binary-infer': binaryInferArb,
  predict: predictArb,
  'raw-body': rawBodyArb,
  routes: routeArb,
  shapes: shapeArb,
  deep: deepArb,
};

/** One generator over every target. */
function overTargets(make: (t: Target) => fc.Arbitrary<Req>): fc.Arbitrary<Req> {
  return fc.oneof(...TARGETS.map(make));
}

/** Every category over every target: for the memory check and the real-HTTP run. */
function anyRequest(): fc.Arbitrary<Req> {
  return fc.oneof(...Object.values(GENERATORS).map(overTargets));
}

async function property(arb: fc.Arbitrary<Req>, numRuns: number): Promise<void> {
  try {
    await fc.assert(fc.asyncProperty(arb, async (r) => verify(r, await sendInProcess(target(r.target).app, r))), { seed: SEED, numRuns });
  } catch (err) {
    // fast-check's report names the seed and the path; this says how to run it again.
    throw new Error(`fuzz failure (reproduce with FUZZ_SEED=${SEED}): ${(err as Error).message}`);
  }
}

async function validRequestWorks(t: Target, send: (r: Req) => Promise<Outcome> = (r) => sendInProcess(t.app, r)): Promise<void> {
  const [inputs] = fc.sample(validInputsArb(t), { seed: 1, numRuns: 1 });
  const r = req({ category: 'valid', target: t.key, method: 'POST', path: inferPath(t, false), headers: { 'Content-Type': 'application/json' }, body: utf8(JSON.stringify({ inputs })) });
  const o = await send(r);
  expect(o.status, o.body.toString('utf8')).toBe(200);
  verify(r, o);
}

function unhandledErrors(): Record<string, unknown>[] {
  return TARGETS.flatMap((t) => t.logger.lines.filter((l) => l.level === 'error'));
}

// ---------------------------------------------------------------------------------------------
// In process
// ---------------------------------------------------------------------------------------------

afterAll(() => {
  const rows = [...STATS].map(([category, byStatus]) => {
    const total = [...byStatus.values()].reduce((a, b) => a + b, 0);
    const statuses = [...byStatus].sort(([a], [b]) => a - b).map(([s, n]) => `${s}:${n}`).join(' ');
    return `  ${category.padEnd(18)} ${String(total).padStart(6)}  ${statuses}`;
  });
  console.log(`fuzz (seed ${SEED}): requests by category and status (0 = connection closed by Node)\n${rows.join('\n')}`);
});

describe('fuzzing the protocol and predict routes in process', () => {
  beforeAll(openTargets);

  // Each property runs against every target; the counts are per property (about 4 000 in all).
  it('JSON inference requests, valid and corrupted', () => property(overTargets(jsonInferArb), runs(900)), 60_000);
  it('binary inference requests with lying lengths and sizes', () => property(overTargets(binaryInferArb), runs(900)), 60_000);
  it('/predict requests, valid and corrupted', () => property(overTargets(predictArb), runs(500)), 60_000);
  it('raw bodies: random bytes, strings, JSON and WAV-shaped data', () => property(overTargets(rawBodyArb), runs(500)), 60_000);
  it('every method on every route, unknown and oddly encoded paths', () => property(overTargets(routeArb), runs(400)), 60_000);
  it('absurd shapes: huge, negative, fractional, non-numbers, overflowing products', () => property(overTargets(shapeArb), runs(500)), 60_000);
  it('deep nesting (up to 100 000 levels) anywhere in the request', () => property(overTargets(deepArb), runs(300)), 60_000);

  it('the generators reach valid requests too (a fuzzer that only makes 400s tests little)', () => {
    for (const category of ['json-infer', 'binary-infer', 'predict']) {
      const ok = STATS.get(category)?.get(200) ?? 0;
      expect(ok, `${category}: ${ok} answers 200`).toBeGreaterThan(runs(20));
    }
  });

  it('logged no unhandled error along the way', () => {
    expect(unhandledErrors()).toEqual([]);
  });

  it('keeps memory bounded: a second run of the same 1 000 requests does not grow the heap', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const batch = fc.sample(anyRequest(), { seed: SEED + 1, numRuns: runs(1000) });
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
      return process.memoryUsage();
    };
    const pass = async () => {
      for (const r of batch) verify({ ...r, category: 'memory-batch' }, await sendInProcess(target(r.target).app, r));
      return settle();
    };
    await pass(); // warm-up: code paths compiled, onnxruntime arenas sized
    const first = await pass();
    const second = await pass();
    const heapGrowth = (second.heapUsed - first.heapUsed) / 2 ** 20;
    const rssGrowth = (second.rss - first.rss) / 2 ** 20;
    console.log(`memory after run 1: heap ${(first.heapUsed / 2 ** 20).toFixed(1)} MB, rss ${(first.rss / 2 ** 20).toFixed(1)} MB; run 2: heap ${heapGrowth.toFixed(2)} MB, rss ${rssGrowth.toFixed(1)} MB more`);
    expect(heapGrowth).toBeLessThan(8);
    expect(rssGrowth).toBeLessThan(64);
    for (const t of TARGETS) await validRequestWorks(t);
  }, 60_000);

  describe('regressions found by fuzzing', () => {
    const infer = (t: string, body: string, headers: Record<string, string> = {}) =>
      target(t).app.request(`/v2/models/${t}/infer`, postJson(body, headers));
    const errorOf = async (res: Response) => ({ status: res.status, error: ((await res.json()) as { error: string }).error });

    it('a shape nested 10 000 deep is a 400 naming the shape, not a 500 (JSON.stringify overflowed the stack)', async () => {
      for (const depth of [10_000, 100_000]) {
        const deep = `${'['.repeat(depth)}0${']'.repeat(depth)}`;
        const err = await errorOf(await infer('iris', `{"inputs":[{"name":"input","datatype":"FP32","shape":${deep},"data":[1]}]}`));
        expect(err.status).toBe(400);
        expect(err.error).toMatch(/shape \[\[\.\.\.\]\] has dimension an array; dimensions must be non-negative integers/);
      }
    });

    it('echoes at most a short prefix of a long name in an error', async () => {
      const long = 'x'.repeat(100_000);
      const err = await errorOf(await infer('iris', JSON.stringify({ inputs: [{ name: long, datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] })));
      expect(err.status).toBe(400);
      expect(err.error).toMatch(/^unknown input 'x{20,80}\.\.\.'; the model's inputs are: input$/);
      const out = await errorOf(await infer('iris', JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }], outputs: [{ name: long }] })));
      expect(out.error).toMatch(/^unknown output 'x{20,80}\.\.\.'; the model's outputs are: probabilities, label$/);
    });

    it('refuses a dimension beyond the element limit even when another dimension is 0', async () => {
      const vad = target('vad').meta;
      for (const shape of [[2 ** 53 - 1, 0], [0, 2 ** 31], [4294967296, 0]]) {
        const inputs = [
          { name: 'input', datatype: 'FP32', shape, data: [] },
          { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Array(256).fill(0) },
          { name: 'sr', datatype: 'INT64', shape: [], data: [16000] },
        ];
        expect(vad.inputs.map((i) => i.name)).toEqual(inputs.map((i) => i.name));
        const err = await errorOf(await infer('vad', JSON.stringify({ inputs })));
        expect(err.status).toBe(400);
        expect(err.error).toMatch(/^input 'input': shape \[\d+,\d+\] has dimension \d+, more than the limit of 16777216 elements$/);
      }
    });

    it("a body the client stops sending (Node's 'aborted') is a 400, not a logged 500", async () => {
      const t = target('iris');
      const before = t.logger.lines.length;
      for (const path of ['/v2/models/iris/infer', '/predict', '/species']) {
        const body = new ReadableStream({ start: (ctl) => ctl.error(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })) });
        const res = await t.app.request(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body, duplex: 'half' } as RequestInit);
        expect(await errorOf(res)).toEqual({ status: 400, error: 'the client closed the connection before sending the whole request body' });
      }
      expect(t.logger.lines.slice(before)).toEqual([]);
    });

    it("'outputs': [] returns every output (as Triton takes it), not onnxruntime's \"'fetches' cannot be an empty array\"", async () => {
      const res = await infer('iris', JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }], outputs: [] }));
      expect(res.status).toBe(200);
      expect(((await res.json()) as { outputs: { name: string }[] }).outputs.map((o) => o.name)).toEqual(['probabilities', 'label']);
    });

    it('cuts an echoed path or version short in 404 and 405 messages', async () => {
      const app = target('iris').app;
      const long = 'a/'.repeat(5000);
      for (const [path, method] of [[`/${long}`, 'GET'], [`/v2/models/iris/${long}`, 'GET'], [`/v2/models/${'m'.repeat(9000)}/infer`, 'POST'], [`/v2/models/iris/versions/${'9'.repeat(9000)}/infer`, 'POST'], [`/v2/models/iris/versions/${'9'.repeat(9000)}/infer`, 'GET']]) {
        const err = await errorOf(await app.request(path, { method }));
        expect([404, 405]).toContain(err.status);
        expect(err.error.length).toBeLessThanOrEqual(1000);
        expect(err.error).toMatch(/\.\.\./);
      }
    });

    // Not seen failing (no model here has rank 44): a guard on the count of a long shape holding a 0.
    it('counts a long shape whose product overflows (Infinity * 0 = NaN) as empty, and checks it like any other', async () => {
      const overflowing = [...new Array(43).fill(2 ** 24), 0];
      const err = await errorOf(await infer('iris', JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: overflowing, data: [] }] })));
      expect(err).toEqual({ status: 400, error: expect.stringMatching(/^input 'input': shape \[16777216,.*\.\.\.\] has rank 44, the model expects rank 2/) });
      const absurd = [...new Array(30).fill(2 ** 53 - 1), 0];
      const err2 = await errorOf(await infer('iris', JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: absurd, data: [] }] })));
      expect(err2.error).toMatch(/has dimension 9007199254740991, more than the limit of 16777216 elements$/);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Over real HTTP
// ---------------------------------------------------------------------------------------------

/** A request over real HTTP; connection errors are reported as status 0. */
function sendHttp(url: string, agent: Agent, r: Req): Promise<Outcome & { error?: string }> {
  return new Promise((done) => {
    const u = new URL(url);
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.body !== undefined) headers['Content-Length'] = r.body.length;
    const request = httpRequest({ host: u.hostname, port: u.port, method: r.method, path: r.path, headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => done({
        status: res.statusCode!,
        contentType: res.headers['content-type'] ?? null,
        headerLength: (res.headers['inference-header-content-length'] as string | undefined) ?? null,
        body: Buffer.concat(parts),
      }));
      res.on('error', (err) => done({ status: 0, contentType: null, headerLength: null, body: Buffer.alloc(0), error: String(err) }));
    });
    request.on('error', (err) => done({ status: 0, contentType: null, headerLength: null, body: Buffer.alloc(0), error: String(err) }));
    if (r.body !== undefined) request.write(r.body);
    request.end();
  });
}

const REFUSALS = { json: 0, bare: 0 };

/**
 * What Node's parser answers by itself (431 headers too large, 400 malformed): bare at first
 * (status line only), JSON once server.ts answers client errors; never anything else.
 */
function nodeRefusal(o: Pick<Outcome, 'status' | 'contentType' | 'body'>): void {
  if (o.body.length === 0) {
    REFUSALS.bare++;
    return;
  }
  expect(o.contentType).toContain('application/json');
  expect(typeof (JSON.parse(o.body.toString('utf8')) as { error?: unknown }).error).toBe('string');
  REFUSALS.json++;
}

/** Status, content type and body of a raw HTTP/1.1 response. */
function parseRaw(text: string): Pick<Outcome, 'status' | 'contentType' | 'body'> {
  const end = text.indexOf('\r\n\r\n');
  const head = end >= 0 ? text.slice(0, end) : text;
  return {
    status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0),
    contentType: /\r\ncontent-type: *([^\r]*)/i.exec(head)?.[1] ?? null,
    body: Buffer.from(end >= 0 ? text.slice(end + 4) : '', 'latin1'),
  };
}

/** Writes raw bytes on a fresh connection and reads until the server closes or answers. */
function rawExchange(url: string, bytes: Buffer | string, waitMs = 2000): Promise<string> {
  return new Promise((done) => {
    const u = new URL(url);
    const socket = connect(Number(u.port), u.hostname);
    let text = '';
    const finish = () => {
      socket.destroy();
      done(text);
    };
    socket.on('data', (d) => {
      text += d.toString('latin1');
      // One response is enough: stop at the end of its body (or of its headers when it has none).
      const end = text.indexOf('\r\n\r\n');
      const length = /content-length: *(\d+)/i.exec(text);
      if (end >= 0 && (!length || text.length >= end + 4 + Number(length[1]))) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    setTimeout(finish, waitMs);
    socket.write(bytes);
  });
}

describe('fuzzing the real server process over HTTP', () => {
  let server: ServerProcess | undefined;
  afterAll(() => {
    if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
  });

  it('answers generated bad requests with JSON 4xx and stays up; exits 0 on SIGTERM', async () => {
    await openTargets();
    server = await startServerProcess('functions/iris');
    const { url } = server;
    const iris = target('iris');
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const batch = fc.sample(fc.oneof(...Object.values(GENERATORS).map((g) => g(iris))), { seed: SEED + 2, numRuns: runs(400) })
      .map((r) => req({ ...r, category: `http-${r.category}` }));
    const failures: string[] = [];
    let refusedHeaders = 0;
    let refusedMethods = 0;
    for (let i = 0; i < batch.length; i += 4) {
      await Promise.all(batch.slice(i, i + 4).map(async (r) => {
        const o = await sendHttp(url, agent, r);
        try {
          // Node's parser refuses headers over its 16 KB limit (--max-http-header-size) with 431, and
          // then closes the connection (a reset when the client is still writing). Not the app's.
          const headerBytes = Object.entries(r.headers).reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
          if (headerBytes > 16 * 1024 && (o.status === 431 || o.status === 0)) {
            if (o.status === 431) nodeRefusal(o);
            refusedHeaders++;
            record('http-parser', o.status);
            return;
          }
          // The parser refuses a method it does not know (FOO) the same way, with 400.
          if (!HTTP_METHODS.includes(r.method)) {
            expect(o.status === 400 || o.status === 0).toBe(true);
            if (o.status === 400) nodeRefusal(o);
            refusedMethods++;
            record('http-parser', o.status);
            return;
          }
          if (o.status === 0) throw new Error(`connection failed: ${o.error}\n  request: ${describeReq(r)}`);
          verify(r, o);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }));
    }
    expect(failures.slice(0, 5)).toEqual([]);
    expect(refusedHeaders).toBeGreaterThan(0);
    expect(refusedMethods).toBeGreaterThan(0);

    // A body over the 10 MB limit is a JSON 413, and the connection carries on.
    const big = req({ category: 'http-limits', target: 'iris', method: 'POST', path: '/v2/models/iris/infer', headers: { 'Content-Type': 'application/json' }, body: Buffer.alloc(11 * 2 ** 20, 0x20) });
    const tooBig = await sendHttp(url, agent, big);
    if (tooBig.status !== 0) {
      verify(big, tooBig);
      expect(tooBig.status).toBe(413);
    }

    // Node's HTTP server refuses headers over 16 KB itself, before the app: 431, and it lives on.
    const hugeHeader = parseRaw(await rawExchange(url, `GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Huge: ${'a'.repeat(64 * 1024)}\r\n\r\n`));
    expect(hugeHeader.status).toBe(431);
    nodeRefusal(hugeHeader);
    const hugeViaClient = await sendHttp(url, agent, req({ category: 'http-limits', target: 'iris', method: 'POST', path: '/v2/models/iris/infer', headers: { 'Content-Type': 'application/json', 'X-Huge': 'b'.repeat(64 * 1024) }, body: utf8('{}') }));
    expect(hugeViaClient.status === 431 || hugeViaClient.status === 0).toBe(true);

    // Malformed HTTP is answered by Node's parser with 400; the server lives on.
    for (const bytes of ['GARBAGE\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', 'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 'POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', Buffer.from([0xff, 0xfe, 0x00, 0x0d, 0x0a, 0x0d, 0x0a])]) {
      const answer = parseRaw(await rawExchange(url, bytes));
      expect(answer.status).toBeGreaterThanOrEqual(400);
      expect(answer.status).toBeLessThan(500);
      nodeRefusal(answer);
    }
    console.log(`Node-level refusals (431, malformed HTTP): ${REFUSALS.json} with a JSON body, ${REFUSALS.bare} bare (no body)`);
    // A client that declares more body than it sends, then goes away.
    await rawExchange(url, 'POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"inputs": [', 300);

    agent.destroy();
    expect(server.child.exitCode).toBe(null);
    const fresh = new Agent({ keepAlive: false });
    expect((await sendHttp(url, fresh, req({ category: 'http-after', target: 'iris', method: 'GET', path: '/v2/health/ready', headers: {} }))).status).toBe(200);
    await validRequestWorks(iris, (r) => sendHttp(url, fresh, r));
    expect(server.lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(server.lines.filter((l) => l.msg === 'request' && Number(l.status) >= 500)).toEqual([]);

    server.child.kill('SIGTERM');
    const { code, stderr } = await server.exited;
    expect(stderr).not.toMatch(/error|uncaught|abort|fatal/i);
    expect(code).toBe(0);
  }, 60_000);
});
