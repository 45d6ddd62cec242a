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
    // FP32 in JSON: the shortest decimal that reads back as the same float32, on every route.
    const expectedJson = type === 'float32' ? [0, 1.5, -2.25, 3.4028235e38, 1e-45, 0.1] : values;

    it(`${datatype} in JSON`, async () => {
      const inputs = Object.entries(CASES).map(([t, v]) => ({ name: `in_${t}`, datatype: DATATYPE[t], shape: [2, 3], data: v }));
      const res = await app.request('/v2/models/datatypes/infer', postJson({ inputs, outputs: [{ name: `out_${type}` }] }));
      expect(res.status).toBe(200);
      const out = ((await res.json()) as { outputs: { datatype: string; shape: number[]; data: unknown[] }[] }).outputs[0];
      expect(out).toEqual({ name: `out_${type}`, datatype, shape: [2, 3], data: expectedJson });
      if (type === 'float32') expect(out.data.map(f32)).toEqual(expected);
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
      ['int64', [0, 0, 2 ** 63, 0, 0, 0], /element 2 is 9223372036854776000, expected an integer from -9223372036854775808 to 9223372036854775807 for INT64$/],
      ['int64', [0, 0, 1e20, 0, 0, 0], /element 2 is 100000000000000000000, expected an integer from -9223372036854775808 to 9223372036854775807 for INT64$/],
      ['uint64', [0, -1, 0, 0, 0, 0], /element 1 is -1, expected an integer from 0 to 18446744073709551615 for UINT64$/],
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

describe('64-bit integers in JSON, exactly, up to the limits of each type', () => {
  let app: Hono;
  beforeAll(async () => {
    ({ app } = await openDeclared(FIXTURES, { name: 'datatypes', model: 'datatypes.onnx' }));
  });
  // Written as JSON text: JSON.stringify cannot hold these values.
  const WIDE: Record<string, string[]> = {
    INT64: ['-9223372036854775808', '9223372036854775807', '9007199254740993', '-9007199254740993', '0', '1'],
    UINT64: ['0', '18446744073709551615', '9007199254740993', '9223372036854775808', '1', '2'],
  };
  /** A request with every input at its CASES values but `type`'s, given as JSON text. */
  const body = (type: 'int64' | 'uint64', dataText: string, extra = '') => {
    const others = Object.entries(CASES).filter(([t]) => t !== type).map(([t, v]) => JSON.stringify({ name: `in_${t}`, datatype: DATATYPE[t], shape: [2, 3], data: v }));
    return `{"inputs":[{"name":"in_${type}","datatype":"${type.toUpperCase()}","shape":[2,3],"data":${dataText}},${others.join(',')}]${extra}}`;
  };

  for (const type of ['int64', 'uint64'] as const) {
    const datatype = type.toUpperCase();
    const values = WIDE[datatype];
    it(`${datatype}: flat and nested JSON in, JSON and binary out, digit for digit`, async () => {
      const flat = `[${values.join(',')}]`;
      const nested = `[[${values.slice(0, 3).join(',')}],[${values.slice(3).join(',')}]]`;
      for (const data of [flat, nested]) {
        const res = await app.request('/v2/models/datatypes/infer', postJson(body(type, data, `,"outputs":[{"name":"out_${type}"}]`)));
        expect(res.status).toBe(200);
        expect(await res.text()).toContain(`{"name":"out_${type}","datatype":"${datatype}","shape":[2,3],"data":${flat}}`);
      }
      const res = await app.request('/v2/models/datatypes/infer', postJson(body(type, flat, `,"outputs":[{"name":"out_${type}","parameters":{"binary_data":true}}]`)));
      const { binary } = await readBinaryResponse(res);
      const read = (i: number) => String(type === 'int64' ? binary.readBigInt64LE(i * 8) : binary.readBigUInt64LE(i * 8));
      expect(values.map((_, i) => read(i))).toEqual(values);
    });
  }

  it('in binary, both ways', async () => {
    const bytes = Buffer.alloc(48);
    WIDE.INT64.forEach((v, i) => bytes.writeBigInt64LE(BigInt(v), i * 8));
    const others = Object.entries(CASES).filter(([t]) => t !== 'int64').map(([t, v]) => ({ name: `in_${t}`, datatype: DATATYPE[t], shape: [2, 3], data: v }));
    const header = { inputs: [{ name: 'in_int64', datatype: 'INT64', shape: [2, 3], parameters: { binary_data_size: 48 } }, ...others], outputs: [{ name: 'out_int64' }] };
    const res = await app.request('/v2/models/datatypes/infer', binaryRequest(header, [bytes]));
    expect(await res.text()).toContain(`"data":[${WIDE.INT64.join(',')}]`);
  });

  it('refuses values past the limits, and numbers that are not plain digits beyond 2^53', async () => {
    const cases: [type: 'int64' | 'uint64', value: string, message: string][] = [
      ['int64', '9223372036854775808', 'element 0 is 9223372036854775808, expected an integer from -9223372036854775808 to 9223372036854775807 for INT64'],
      ['int64', '-9223372036854775809', 'element 0 is -9223372036854775809, expected an integer from -9223372036854775808 to 9223372036854775807 for INT64'],
      ['uint64', '18446744073709551616', 'element 0 is 18446744073709551616, expected an integer from 0 to 18446744073709551615 for UINT64'],
      ['uint64', '9007199254740993.0', 'element 0 is 9007199254740992, expected an integer from 0 to 18446744073709551615 for UINT64; write integers beyond ±2^53 as plain digits'],
    ];
    for (const [type, value, message] of cases) {
      const res = await app.request('/v2/models/datatypes/infer', postJson(body(type, `[${value},1,2,3,4,5]`)));
      expect(await res.json()).toEqual({ error: `input 'in_${type}': ${message}` });
    }
  });

  it('keeps the other tensors of such a request as JSON.parse reads them', async () => {
    const text = body('int64', '[9223372036854775807,1,2,3,4,5]', ',"outputs":[{"name":"out_float64"},{"name":"out_string"}]')
      .replace('"data":[0,1.5,-2.25,1.7976931348623157e+308,5e-324,0.1]', '"data":[12345678901234567890,1.5,-2.25,1,2,0.1]');
    expect(text).toContain('12345678901234567890');
    const res = await app.request('/v2/models/datatypes/infer', postJson(text));
    const out = ((await res.json()) as { outputs: { data: unknown[] }[] }).outputs;
    expect(out[0].data).toEqual([12345678901234567890, 1.5, -2.25, 1, 2, 0.1]);
    expect(out[1].data).toEqual(CASES.string);
  });

  it('/predict reads and writes them exactly too', async () => {
    const { app: wide } = await openDeclared(FIXTURES, { name: 'wide', model: 'wide-integers.onnx' });
    const res = await wide.request('/predict', postJson('{"instances": [[9223372036854775807, -9223372036854775808], [1, 2]]}'));
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.text()).toBe('{"predictions":[{"same":[9223372036854775807,-9223372036854775808],"unsigned":[9223372036854775807,9223372036854775808]},{"same":[1,2],"unsigned":[1,2]}]}');
    const small = await wide.request('/predict', postJson({ instances: [[1, -2]] }));
    expect(await small.json()).toEqual({ predictions: [{ same: [1, -2], unsigned: [1, 18446744073709551614] }] });
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
