/**
 * The Open Inference Protocol's datatypes and how each maps onto onnxruntime's tensor types.
 */
import type { Tensor } from 'onnxruntime-node';

export type Datatype =
  | 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64'
  | 'INT8' | 'INT16' | 'INT32' | 'INT64'
  | 'FP16' | 'FP32' | 'FP64' | 'BYTES';

export type NumericArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | BigInt64Array | BigUint64Array | Float32Array | Float64Array;

/** What a JSON element of this datatype must look like. */
export type JsonKind = 'bool' | 'int' | 'bigint' | 'float' | 'half' | 'string';

export interface DatatypeInfo {
  datatype: Datatype;
  /** onnxruntime's name for the type. */
  ortType: Tensor.Type;
  /** Bytes per element in the binary form; 0 for BYTES (length-prefixed). */
  bytes: number;
  kind: JsonKind;
  /** Allocates storage for n elements (absent for BYTES). */
  array?: new (n: number) => NumericArray;
  /** Views n elements of a buffer at a byte offset (offset must be aligned). */
  view?: (buffer: ArrayBufferLike, byteOffset: number, n: number) => NumericArray;
  /** Smallest and largest value for the narrow integer types (for INT64/UINT64: of the exact JSON numbers). */
  min?: number;
  max?: number;
  /** Smallest and largest value of INT64 and UINT64. */
  bigMin?: bigint;
  bigMax?: bigint;
}

function info(
  datatype: Datatype,
  ortType: Tensor.Type,
  kind: JsonKind,
  Ctor?: (new (n: number) => NumericArray) & (new (b: ArrayBufferLike, o: number, n: number) => NumericArray) & { BYTES_PER_ELEMENT: number },
  range?: [number, number],
  bigRange?: [bigint, bigint],
): DatatypeInfo {
  return {
    datatype,
    ortType,
    kind,
    bytes: Ctor ? Ctor.BYTES_PER_ELEMENT : 0,
    array: Ctor,
    view: Ctor ? (buffer, byteOffset, n) => new Ctor(buffer, byteOffset, n) : undefined,
    min: range?.[0],
    max: range?.[1],
    bigMin: bigRange?.[0],
    bigMax: bigRange?.[1],
  };
}

const TABLE: DatatypeInfo[] = [
  info('BOOL', 'bool', 'bool', Uint8Array),
  info('UINT8', 'uint8', 'int', Uint8Array, [0, 255]),
  info('UINT16', 'uint16', 'int', Uint16Array, [0, 65535]),
  info('UINT32', 'uint32', 'int', Uint32Array, [0, 4294967295]),
  info('UINT64', 'uint64', 'bigint', BigUint64Array, [0, Number.MAX_SAFE_INTEGER], [0n, 2n ** 64n - 1n]),
  info('INT8', 'int8', 'int', Int8Array, [-128, 127]),
  info('INT16', 'int16', 'int', Int16Array, [-32768, 32767]),
  info('INT32', 'int32', 'int', Int32Array, [-2147483648, 2147483647]),
  info('INT64', 'int64', 'bigint', BigInt64Array, [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER], [-(2n ** 63n), 2n ** 63n - 1n]),
  info('FP16', 'float16', 'half', Uint16Array),
  info('FP32', 'float32', 'float', Float32Array),
  info('FP64', 'float64', 'float', Float64Array),
  info('BYTES', 'string', 'string'),
];

/** Datatype information by protocol name. */
export const DATATYPES: ReadonlyMap<string, DatatypeInfo> = new Map(TABLE.map((d) => [d.datatype, d]));

const BY_ORT_TYPE: ReadonlyMap<string, DatatypeInfo> = new Map(TABLE.map((d) => [d.ortType, d]));

/** The protocol datatype of an onnxruntime tensor type, or undefined when the protocol has none. */
export function datatypeOfOrtType(type: string): DatatypeInfo | undefined {
  return BY_ORT_TYPE.get(type);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Rounds a number to the nearest IEEE 754 half-precision value and returns its 16 bits.
 *
 * @example toHalfBits(1) // 0x3c00
 */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and overflows to infinity).
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

/**
 * The number that 16 half-precision bits encode.
 *
 * @example fromHalfBits(0x3c00) // 1
 */
export function fromHalfBits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
