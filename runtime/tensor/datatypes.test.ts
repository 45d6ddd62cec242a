import { beforeAll, describe, expect, it } from 'vitest';
import { fromHalfBits, toHalfBits } from './datatypes.ts';
import { decodeBinary, encodeBinary, FIXTURES, binaryRequest, openDeclared, postJson, readBinaryResponse } from '../testing/index.ts';
import type { Hono } from 'hono';

// One model with an Identity per ONNX type (scripts/models/datatypes.py): every value sent
// must come back unchanged, in JSON and in binary form.
const CASES: Record<string, unknown[]> = {
  bool: [true, false, true, false, false, true],
  int8: [-128, -1, 0, 1, 64, 127],
  int16: [-32768, -300, 0, 1, 300, 32767],
  int32: [-2147483648, -70000, 0, 1, 70000, 2147483647],
  int64: [-9007199254740991, -5, 0, 1, 5, 9007199254740991],
  uint8: [0, 1, 2, 128, 200, 255],
  uint16: [0, 1, 300, 40000, 65534, 65535],
  uint32: [0, 1, 70000, 3000000000, 4294967294, 4294967295],
  uint64: [0, 1, 2, 4294967296, 1e15, 9007199254740991],
  float16: [0, 1, -2, 0.5, 65504, 0.0009765625],
  float32: [0, 1.5, -2.25, 3.4028234663852886e38, 1.401298464324817e-45, 0.1],
  float64: [0, 1.5, -2.25, 1.7976931348623157e308, 5e-324, 0.1],
  string: ['', 'a', 'héllo', '日本語', 'line\nbreak', '"quoted"'],
};
const DATATYPE: Record<string, string> = {
  bool: 'BOOL', int8: 'INT8', int16: 'INT16', int32: 'INT32', int64: 'INT64', uint8: 'UINT8', uint16: 'UINT16',
  uint32: 'UINT32', uint64: 'UINT64', float16: 'FP16', float32: 'FP32', float64: 'FP64', string: 'BYTES',
};
const f32 = (v: unknown) => (typeof v === 'number' ? Math.fround(v) : v);

describe('every datatype round-trips', () => {
  let app: Hono;
  beforeAll(async () => {
    ({ app } = await openDeclared(FIXTURES, { name: 'datatypes', model: 'datatypes.onnx' }));
  });

  it('reports every type in the model metadata', async () => {
    const meta = (await (await app.request('/v2/models/datatypes')).json()) as { inputs: { name: string; datatype: string; shape: number[] }[] };
    for (const [type, datatype] of Object.entries(DATATYPE)) {
      expect(meta.inputs).toContainEqual({ name: `in_${type}`, datatype, shape: [-1, 3] });
    }
  });

  for (const [type, values] of Object.entries(CASES)) {
    const datatype = DATATYPE[type];
    const expected = type === 'float32' ? values.map(f32) : values;

    it(`${datatype} in JSON`, async () => {
      const inputs = Object.entries(CASES).map(([t, v]) => ({ name: `in_${t}`, datatype: DATATYPE[t], shape: [2, 3], data: v }));
      const res = await app.request('/v2/models/datatypes/infer', postJson({ inputs, outputs: [{ name: `out_${type}` }] }));
      expect(res.status).toBe(200);
      const out = ((await res.json()) as { outputs: { datatype: string; shape: number[]; data: unknown[] }[] }).outputs[0];
      expect(out).toEqual({ name: `out_${type}`, datatype, shape: [2, 3], data: expected });
    });

    it(`${datatype} in binary`, async () => {
      const all = Object.entries(CASES);
      const chunks = all.map(([t, v]) => encodeBinary(DATATYPE[t], v));
      // An odd-length BOOL tensor first makes the later tensors unaligned: they must still decode.
      const header = {
        inputs: all.map(([t], i) => ({ name: `in_${t}`, datatype: DATATYPE[t], shape: [2, 3], parameters: { binary_data_size: chunks[i].length } })),
        outputs: [{ name: `out_${type}`, parameters: { binary_data: true } }],
      };
      const res = await app.request('/v2/models/datatypes/infer', binaryRequest(header, chunks));
      expect(res.status).toBe(200);
      const { header: out, binary } = await readBinaryResponse(res);
      expect(out.outputs[0]).toEqual({ name: `out_${type}`, datatype, shape: [2, 3], parameters: { binary_data_size: binary.length } });
      expect(decodeBinary(datatype, binary)).toEqual(expected);
    });
  }

  it('refuses values out of range or of the wrong kind, naming the element', async () => {
    const bad: [string, unknown[], RegExp][] = [
      ['int8', [0, 0, 0, 0, 0, 128], /element 5 is 128, expected an integer from -128 to 127 for INT8/],
      ['uint8', [-1, 0, 0, 0, 0, 0], /element 0 is -1/],
      ['int32', [0, 1.5, 0, 0, 0, 0], /element 1 is 1.5/],
      ['int64', [0, 0, 2 ** 60, 0, 0, 0], /element 2 .* within ±2\^53/],
      ['bool', [0, 1, 0, 1, 0, 1], /element 0 is 0, expected true or false/],
      ['string', ['a', 'b', 3, 'd', 'e', 'f'], /element 2 is 3, expected a string/],
      ['float32', ['1', 0, 0, 0, 0, 0], /element 0 is "1", expected a number/],
    ];
    for (const [type, data, pattern] of bad) {
      const inputs = Object.entries(CASES).map(([t, v]) => ({ name: `in_${t}`, datatype: DATATYPE[t], shape: [2, 3], data: t === type ? data : v }));
      const res = await app.request('/v2/models/datatypes/infer', postJson({ inputs }));
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(pattern);
    }
  });
});

describe('half precision', () => {
  it('converts exactly representable values both ways', () => {
    for (const v of [0, 1, -1, 0.5, 2, 65504, -65504, 2 ** -14, 2 ** -24, 0.333251953125]) {
      expect(fromHalfBits(toHalfBits(v))).toBe(v);
    }
  });
  it('rounds to nearest even, overflows to infinity and keeps NaN', () => {
    expect(fromHalfBits(toHalfBits(1 + 2 ** -11))).toBe(1);
    expect(fromHalfBits(toHalfBits(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
    expect(fromHalfBits(toHalfBits(1e6))).toBe(Infinity);
    expect(fromHalfBits(toHalfBits(-1e6))).toBe(-Infinity);
    expect(fromHalfBits(toHalfBits(NaN))).toBeNaN();
    expect(toHalfBits(-0)).toBe(0x8000);
  });
});
