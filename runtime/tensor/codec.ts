/**
 * Tensor codecs: JSON data (flat or nested) and the binary tensor data extension, both ways.
 *
 * Decoding writes straight into one typed array per tensor; binary inputs are views over the
 * request's own buffer whenever alignment allows. Messages name the tensor and what is wrong.
 */
// onnxruntime-node's Tensor, without its native library (that loads on the inference thread).
import * as ort from 'onnxruntime-common';
import { fromHalfBits, toHalfBits, type DatatypeInfo, type NumericArray } from './datatypes.ts';
import { invalidInput } from '../core/errors.ts';
import { InexactIntegerError } from './json-exact.ts';

type Storage = NumericArray | string[];

/**
 * The smallest magnitude each float type rounds to infinity (round to nearest even): the
 * largest finite value plus half its last place. FP64's is the double's own overflow.
 */
const FLOAT_LIMITS: Record<string, number> = { FP16: 65520, FP32: 2 ** 128 - 2 ** 103, FP64: Infinity };
/** The largest finite value of each float type, for messages. */
const FLOAT_MAX: Record<string, string> = { FP16: '65504', FP32: '3.4028235e38', FP64: '1.7976931348623157e308' };
type Writer = (out: Storage, i: number, v: unknown) => boolean;

function writers(info: DatatypeInfo): Writer {
  const min = info.min ?? 0;
  const max = info.max ?? 0;
  const bigMin = info.bigMin ?? 0n;
  const bigMax = info.bigMax ?? 0n;
  // BigInts only come from parseJsonExact (integers beyond ±2^53, read again for a 64-bit
  // tensor of the same request): a float tensor takes them as the nearest double.
  // A float must stay finite in its type: JSON has no Infinity, so one is a literal too large (1e999).
  const limit = FLOAT_LIMITS[info.datatype] ?? Infinity;
  switch (info.kind) {
    case 'float':
      return (out, i, v) => (typeof v === 'number' ? Math.abs(v) < limit && ((out as Float32Array)[i] = v, true) : typeof v === 'bigint' && ((out as Float32Array)[i] = Number(v), true));
    case 'half':
      return (out, i, v) => (typeof v === 'number' ? Math.abs(v) < limit && ((out as Uint16Array)[i] = toHalfBits(v), true) : typeof v === 'bigint' && ((out as Uint16Array)[i] = toHalfBits(Number(v)), true));
    case 'int':
      return (out, i, v) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max && ((out as Int32Array)[i] = v, true);
    case 'bigint':
      return (out, i, v) => (typeof v === 'number'
        ? Number.isSafeInteger(v) && v >= min && ((out as BigInt64Array)[i] = BigInt(v), true)
        : typeof v === 'bigint' && v >= bigMin && v <= bigMax && ((out as BigInt64Array)[i] = v, true));
    case 'bool':
      return (out, i, v) => typeof v === 'boolean' && ((out as Uint8Array)[i] = v ? 1 : 0, true);
    case 'string':
      return (out, i, v) => typeof v === 'string' && ((out as string[])[i] = v, true);
  }
}

const WRITERS = new Map<DatatypeInfo, Writer>();
function writerOf(info: DatatypeInfo): Writer {
  let w = WRITERS.get(info);
  if (!w) WRITERS.set(info, (w = writers(info)));
  return w;
}

function expectation(info: DatatypeInfo): string {
  switch (info.kind) {
    case 'float':
    case 'half': return 'a number';
    case 'int': return `an integer from ${info.min} to ${info.max}`;
    case 'bigint': return `an integer from ${info.bigMin} to ${info.bigMax}`;
    case 'bool': return 'true or false';
    case 'string': return 'a string';
  }
}

function preview(v: unknown): string {
  const text = typeof v === 'bigint' ? String(v) : Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v === 'object' ? 'an object' : JSON.stringify(v);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** A shape for a message, cut short: a client's shape may hold anything, nested to any depth. */
export function shapeText(shape: readonly unknown[]): string {
  const dims = shape.slice(0, 16).map((d) => (typeof d === 'number' ? String(d) : Array.isArray(d) ? '[...]' : typeof d === 'object' && d !== null ? '{...}' : preview(d)));
  const text = `[${dims.join(',')}${shape.length > 16 ? ',...' : ''}]`;
  return text.length > 80 ? `${text.slice(0, 76)}...]` : text;
}

/**
 * Checks a requested shape and returns its element count, refusing absurd counts (and absurd
 * dimensions, even beside a 0) before any allocation.
 */
export function elementCount(where: string, shape: unknown, maxElements: number): number {
  if (!Array.isArray(shape)) throw invalidInput(`${where}: 'shape' must be an array of non-negative integers`);
  let count = 1;
  let largest = 0;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw invalidInput(`${where}: shape ${shapeText(shape)} has dimension ${preview(d)}; dimensions must be non-negative integers`);
    }
    count *= d;
    largest = Math.max(largest, d);
  }
  // NaN is Infinity * 0: a long shape overflowed, but a 0 in it makes the tensor empty.
  if (Number.isNaN(count)) count = 0;
  if (count > maxElements) {
    throw invalidInput(`${where}: shape ${shapeText(shape)} has ${count} elements, more than the limit of ${maxElements}`);
  }
  // An empty tensor may still declare an absurd dimension beside its 0 (onnxruntime would get it).
  if (largest > maxElements) {
    throw invalidInput(`${where}: shape ${shapeText(shape)} has dimension ${largest}, more than the limit of ${maxElements} elements`);
  }
  return count;
}

function makeTensor(info: DatatypeInfo, data: Storage, shape: readonly number[]): ort.Tensor {
  return new ort.Tensor(info.ortType as 'float32', data as Float32Array, shape);
}

/**
 * Decodes a tensor sent as JSON `data`, flat (row-major) or nested to the shape.
 *
 * @example tensorFromJson("input 'x'", DATATYPES.get('FP32')!, [2, 2], 4, [[1, 2], [3, 4]])
 */
export function tensorFromJson(where: string, info: DatatypeInfo, shape: readonly number[], count: number, data: unknown): ort.Tensor {
  const out: Storage = info.array ? new info.array(count) : new Array<string>(count);
  const write = writerOf(info);
  const fail = (i: number, v: unknown): never => {
    if (typeof v === 'number' && (info.kind === 'float' || info.kind === 'half')) {
      // JSON.parse makes a literal beyond the double's range Infinity: say what it was, not "null".
      const sent = Number.isFinite(v) ? preview(v) : 'a number too large for JSON to carry (such as 1e999)';
      throw invalidInput(`${where}: element ${i} is ${sent}, beyond ${info.datatype}'s range of ±${FLOAT_MAX[info.datatype]}; send finite values within it`);
    }
    const message = `${where}: element ${i} is ${preview(v)}, expected ${expectation(info)} for ${info.datatype}`;
    // JSON.parse rounded this integer; withExactIntegers reads the digits again.
    if (info.kind === 'bigint' && typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) {
      throw new InexactIntegerError(`${message}; write integers beyond ±2^53 as plain digits`);
    }
    throw invalidInput(message);
  };
  if (!Array.isArray(data)) {
    if (shape.length === 0 && count === 1 && data !== undefined) {
      if (!write(out, 0, data)) fail(0, data);
      return makeTensor(info, out, shape);
    }
    throw invalidInput(`${where}: 'data' must be an array`);
  }
  if (data.length === count && (count === 0 || !Array.isArray(data[0])) && (shape.length <= 1 || count !== 0 || data.length === 0)) {
    for (let i = 0; i < count; i++) if (!write(out, i, data[i])) fail(i, data[i]);
    return makeTensor(info, out, shape);
  }
  if (shape.length === 0) throw invalidInput(`${where}: a scalar (shape []) takes exactly one value, received ${data.length}`);
  const send = `send ${count} values flat, or arrays nested to the shape`;
  // Flat data of the wrong length: the count is what is wrong, not a depth.
  if (data.length > 0 && !Array.isArray(data[0]) && shape.length > 1) {
    throw invalidInput(`${where}: 'data' holds ${data.length} values, shape ${shapeText(shape)} has ${count} elements; ${send}`);
  }
  let index = 0;
  // Where the walk is, as the client wrote it: data[0][2].
  const at: number[] = [];
  const place = (depth: number) => `data${at.slice(0, depth).map((j) => `[${j}]`).join('')}`;
  const mismatch = (detail: string): never => {
    throw invalidInput(`${where}: ${detail}, as shape ${shapeText(shape)} says; ${send}`);
  };
  const last = shape.length - 1;
  const walk = (arr: unknown[], depth: number): void => {
    // Deeper than the shape: said before any count, which would name the wrong thing.
    if (depth === last && Array.isArray(arr[0])) {
      at[depth] = 0;
      mismatch(`${place(depth + 1)} is an array where a value belongs: the data is nested deeper than the shape's ${shape.length} dimensions`);
    }
    if (arr.length !== shape[depth]) mismatch(`${place(depth)} holds ${arr.length} ${depth === last ? 'values' : 'arrays'}, not ${shape[depth]}`);
    if (depth === last) {
      for (let j = 0; j < arr.length; j++, index++) {
        const v = arr[j];
        at[depth] = j;
        if (Array.isArray(v)) mismatch(`${place(depth + 1)} is an array where a value belongs: the data is nested deeper than the shape's ${shape.length} dimensions`);
        if (!write(out, index, v)) fail(index, v);
      }
      return;
    }
    for (let j = 0; j < arr.length; j++) {
      const v = arr[j];
      at[depth] = j;
      if (!Array.isArray(v)) mismatch(`${place(depth + 1)} is ${preview(v)} where an array of ${shape[depth + 1]} belongs`);
      walk(v as unknown[], depth + 1);
    }
  };
  walk(data, 0);
  return makeTensor(info, out, shape);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes a tensor sent in binary: `size` bytes of `body` starting at `offset`.
 * Fixed-size types become a view over the body when aligned (a copy otherwise).
 */
export function tensorFromBinary(
  where: string, info: DatatypeInfo, shape: readonly number[], count: number,
  body: Uint8Array, offset: number, size: number,
): ort.Tensor {
  if (info.view) {
    const expected = count * info.bytes;
    if (size !== expected) {
      throw invalidInput(`${where}: binary_data_size is ${size} bytes, but shape ${shapeText(shape)} of ${info.datatype} needs ${expected}`);
    }
    const start = body.byteOffset + offset;
    const data = start % info.bytes === 0
      ? info.view(body.buffer, start, count)
      : info.view(body.slice(offset, offset + size).buffer, 0, count);
    return makeTensor(info, data, shape);
  }
  const out = new Array<string>(count);
  const view = new DataView(body.buffer, body.byteOffset + offset, size);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > size) throw invalidInput(`${where}: binary BYTES data ends at element ${i} of ${count}`);
    const len = view.getUint32(pos, true);
    pos += 4;
    if (pos + len > size) throw invalidInput(`${where}: binary BYTES element ${i} declares ${len} bytes, past the end of its data`);
    try {
      out[i] = utf8.decode(body.subarray(offset + pos, offset + pos + len));
    } catch {
      throw invalidInput(`${where}: binary BYTES element ${i} is not valid UTF-8`);
    }
    pos += len;
  }
  if (pos !== size) throw invalidInput(`${where}: binary_data_size is ${size} bytes, but its ${count} BYTES elements use ${pos}`);
  return makeTensor(info, out, shape);
}

/**
 * A float32 as the shortest decimal that reads back as the same float32: what the model
 * computed, without the digits a float64 print adds (0.98158467, not 0.9815846681594849): the one
 * rule for FP32 in every JSON answer (/predict, infer's data, classification scores).
 * Not finite: null, as JSON has no NaN or Infinity.
 *
 * @example float32Number(Math.fround(0.1)) // 0.1
 */
export function float32Number(v: number): number | null {
  if (!Number.isFinite(v)) return null;
  if (v === 0) return 0;
  // Six digits always suffice to start from for normal numbers; a subnormal's few bits may need fewer (1e-45).
  for (let digits = Math.abs(v) < 2 ** -126 ? 1 : 6; digits < 9; digits++) {
    const short = Number(v.toPrecision(digits));
    if (Math.fround(short) === v) return short;
  }
  return Number(v.toPrecision(9));
}

/** A float32 array's JSON text, each value as float32Number prints it. */
function joinFloat32(data: Float32Array): string {
  // About 1.7 µs a value against 0.6 for join() (1e6 values, this machine): 5 µs on a 10-class answer.
  const parts = new Array<string>(data.length);
  for (let i = 0; i < data.length; i++) parts[i] = String(float32Number(data[i]));
  return `[${parts.join(',')}]`;
}

function joinFinite(data: ArrayLike<number> & { join(sep: string): string; length: number }): string {
  const text = data.join(',');
  // NaN and ±Infinity have no JSON form: they become null.
  if (!/[NI]/.test(text)) return `[${text}]`;
  const parts = new Array<string>(data.length);
  for (let i = 0; i < data.length; i++) parts[i] = Number.isFinite(data[i]) ? String(data[i]) : 'null';
  return `[${parts.join(',')}]`;
}

/** The JSON text of a tensor's data, flat and row-major. */
export function tensorToJsonData(tensor: ort.Tensor): string {
  const data = tensor.data;
  switch (tensor.type) {
    case 'string':
      return JSON.stringify(data);
    case 'bool': {
      const bytes = data as Uint8Array;
      const parts = new Array<string>(bytes.length);
      for (let i = 0; i < bytes.length; i++) parts[i] = bytes[i] ? 'true' : 'false';
      return `[${parts.join(',')}]`;
    }
    case 'float16': {
      const bits = data as Uint16Array;
      if (!(bits instanceof Uint16Array)) return joinFinite(data as unknown as Float32Array);
      const values = new Float64Array(bits.length);
      for (let i = 0; i < bits.length; i++) values[i] = fromHalfBits(bits[i]);
      return joinFinite(values);
    }
    case 'float32':
      return joinFloat32(data as Float32Array);
    case 'float64':
      return joinFinite(data as Float64Array);
    default:
      return `[${(data as Int32Array).join(',')}]`;
  }
}

const encoder = new TextEncoder();

/** A tensor's data in the binary extension's form (little-endian; BYTES length-prefixed). */
export function tensorToBytes(tensor: ort.Tensor): Uint8Array {
  if (tensor.type !== 'string') {
    const data = tensor.data as NumericArray;
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  const strings = (tensor.data as string[]).map((s) => encoder.encode(s));
  let total = 0;
  for (const s of strings) total += 4 + s.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let pos = 0;
  for (const s of strings) {
    view.setUint32(pos, s.length, true);
    out.set(s, pos + 4);
    pos += 4 + s.length;
  }
  return out;
}

/** Reads element i of a numeric tensor as a number. */
function numberAt(tensor: ort.Tensor): (i: number) => number {
  const data = tensor.data as NumericArray;
  if (tensor.type === 'float16' && data instanceof Uint16Array) return (i) => fromHalfBits(data[i]);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return (i) => Number(data[i]);
  return (i) => (data as Float32Array)[i];
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Whether a tensor holds 64-bit integers a double cannot carry exactly. */
export function hasWideIntegers(tensor: ort.Tensor): boolean {
  const data = tensor.data;
  if (!(data instanceof BigInt64Array || data instanceof BigUint64Array)) return false;
  for (let i = 0; i < data.length; i++) if (data[i] > MAX_SAFE || data[i] < -MAX_SAFE) return true;
  return false;
}

/**
 * Reads element i of any tensor as a JSON value: booleans, strings, numbers (NaN and ±Infinity
 * as null); 64-bit integers beyond ±2^53 as BigInt, for stringifyExact.
 */
export function jsonValueAt(tensor: ort.Tensor): (i: number) => unknown {
  if (tensor.type === 'bool') {
    const bytes = tensor.data as Uint8Array;
    return (i) => bytes[i] !== 0;
  }
  if (tensor.type === 'string') {
    const strings = tensor.data as string[];
    return (i) => strings[i];
  }
  const data = tensor.data;
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    return (i) => (data[i] <= MAX_SAFE && data[i] >= -MAX_SAFE ? Number(data[i]) : data[i]);
  }
  if (data instanceof Float32Array) return (i) => float32Number(data[i]);
  const at = numberAt(tensor);
  return (i) => {
    const v = at(i);
    return Number.isFinite(v) ? v : null;
  };
}

/**
 * How a shape fails a model's (-1 = any size): its rank, or the first dimension that differs;
 * undefined when it fits. Callers word the message for their route.
 */
export function shapeMismatch(expected: readonly number[], shape: readonly number[]): { rank: true } | { dimension: number } | undefined {
  if (shape.length !== expected.length) return { rank: true };
  for (let i = 0; i < shape.length; i++) if (expected[i] >= 0 && expected[i] !== shape[i]) return { dimension: i };
  return undefined;
}

/**
 * The classification extension: the top `k` entries of each row as `"<score>:<index>[:<label>]"`.
 *
 * @example classify(probabilities, 1, ['setosa', 'versicolor', 'virginica']) // [["0.97:0:setosa"]]
 */
export function classify(where: string, tensor: ort.Tensor, k: number, labels?: readonly string[]): { shape: number[]; data: string[] } {
  if (tensor.type === 'string' || tensor.type === 'bool') {
    throw invalidInput(`${where}: classification needs a numeric output, this one is ${tensor.type === 'string' ? 'BYTES' : 'BOOL'}`);
  }
  const dims = tensor.dims;
  const rows = dims.length >= 2 ? dims[0] : 1;
  const cols = rows === 0 ? 0 : tensor.size / rows;
  const take = Math.min(k, cols);
  const at = numberAt(tensor);
  const data: string[] = [];
  const picked = new Uint8Array(cols);
  for (let r = 0; r < rows; r++) {
    picked.fill(0);
    const base = r * cols;
    for (let n = 0; n < take; n++) {
      let best = -1;
      let bestValue = -Infinity;
      for (let c = 0; c < cols; c++) {
        const v = at(base + c);
        if (!picked[c] && (best < 0 || v > bestValue)) { best = c; bestValue = v; }
      }
      picked[best] = 1;
      const label = labels?.[best];
      const score = tensor.type === 'float32' ? float32Number(bestValue) : bestValue;
      data.push(label === undefined ? `${score}:${best}` : `${score}:${best}:${label}`);
    }
  }
  return { shape: dims.length >= 2 ? [rows, take] : [take], data };
}
