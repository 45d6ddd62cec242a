/**
 * The Open Inference Protocol conformance suite: one set of tests every function passes,
 * whether it runs in process (app.request) or behind a real URL.
 */
import { deflateSync, gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { binaryRequest, compressionBomb, decodedBody, errorOf, postJson, readBinaryResponse } from './helpers.ts';

export type Requester = (path: string, init?: RequestInit) => Promise<Response>;

interface TensorMeta { name: string; datatype: string; shape: number[] }
interface ModelMeta { name: string; versions: string[]; platform: string; inputs: TensorMeta[]; outputs: TensorMeta[] }
interface InputJson { name: string; datatype: string; shape: number[]; data: unknown[] }

const DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'];
const WIDTH: Record<string, number> = { BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8 };

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function zero(datatype: string): unknown {
  return datatype === 'BOOL' ? false : datatype === 'BYTES' ? '' : 0;
}

/** A valid request for any model: zeros, with every dynamic dimension set to 1. */
export function zeroRequest(meta: ModelMeta): { inputs: InputJson[] } {
  return {
    inputs: meta.inputs.map((t) => {
      const shape = t.shape.map((d) => (d < 0 ? 1 : d));
      return { name: t.name, datatype: t.datatype, shape, data: new Array(count(shape)).fill(zero(t.datatype)) };
    }),
  };
}

/** Nests flat data to its shape. */
export function nest(data: unknown[], shape: number[]): unknown {
  if (shape.length <= 1) return data;
  const size = count(shape.slice(1));
  return Array.from({ length: shape[0] }, (_, i) => nest(data.slice(i * size, (i + 1) * size), shape.slice(1)));
}

/** Encodes JSON data in the binary extension's form. */
export function encodeBinary(datatype: string, data: unknown[]): Uint8Array {
  if (datatype === 'BYTES') {
    return Buffer.concat((data as string[]).map((s) => {
      const b = Buffer.from(s, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return Buffer.concat([len, b]);
    }));
  }
  const out = Buffer.alloc(data.length * WIDTH[datatype]);
  data.forEach((v, i) => {
    const o = i * WIDTH[datatype];
    switch (datatype) {
      case 'BOOL': out.writeUInt8(v ? 1 : 0, o); break;
      case 'UINT8': out.writeUInt8(v as number, o); break;
      case 'INT8': out.writeInt8(v as number, o); break;
      case 'UINT16': out.writeUInt16LE(v as number, o); break;
      case 'INT16': out.writeInt16LE(v as number, o); break;
      case 'UINT32': out.writeUInt32LE(v as number, o); break;
      case 'INT32': out.writeInt32LE(v as number, o); break;
      case 'UINT64': out.writeBigUInt64LE(BigInt(v as number), o); break;
      case 'INT64': out.writeBigInt64LE(BigInt(v as number), o); break;
      case 'FP32': out.writeFloatLE(v as number, o); break;
      case 'FP64': out.writeDoubleLE(v as number, o); break;
      case 'FP16': out.writeUInt16LE(halfBits(v as number), o); break;
    }
  });
  return out;
}

/** Decodes binary-extension bytes into JSON-comparable values. */
export function decodeBinary(datatype: string, bytes: Buffer): unknown[] {
  if (datatype === 'BYTES') {
    const out: string[] = [];
    for (let pos = 0; pos < bytes.length;) {
      const len = bytes.readUInt32LE(pos);
      out.push(bytes.subarray(pos + 4, pos + 4 + len).toString('utf8'));
      pos += 4 + len;
    }
    return out;
  }
  const n = bytes.length / WIDTH[datatype];
  return Array.from({ length: n }, (_, i) => {
    const o = i * WIDTH[datatype];
    switch (datatype) {
      case 'BOOL': return bytes.readUInt8(o) !== 0;
      case 'UINT8': return bytes.readUInt8(o);
      case 'INT8': return bytes.readInt8(o);
      case 'UINT16': return bytes.readUInt16LE(o);
      case 'INT16': return bytes.readInt16LE(o);
      case 'UINT32': return bytes.readUInt32LE(o);
      case 'INT32': return bytes.readInt32LE(o);
      case 'UINT64': return Number(bytes.readBigUInt64LE(o));
      case 'INT64': return Number(bytes.readBigInt64LE(o));
      case 'FP32': return bytes.readFloatLE(o);
      case 'FP64': return bytes.readDoubleLE(o);
      default: return halfValue(bytes.readUInt16LE(o));
    }
  });
}

// Test-side half-precision codec, independent of the runtime's, so each checks the other.
function halfBits(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const e = ((x >>> 23) & 0xff) - 112;
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | ((x & 0x7fffff) ? 0x200 : 0);
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) return sign | Math.round(Math.abs(v) / 2 ** -24);
  return sign | ((e << 10) + Math.round((x & 0x7fffff) / 0x2000));
}
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Registers the suite. `example` is the function's declared example request, if any;
 * otherwise a request of zeros is made from the model's metadata.
 */
export function conformanceSuite(label: string, setup: () => Promise<{ request: Requester; name: string; example?: { inputs: InputJson[] } }>): void {
  describe(`Open Inference Protocol conformance: ${label}`, () => {
    let request: Requester;
    let name: string;
    let meta: ModelMeta;
    let example: { inputs: InputJson[] };
    let base: string;
    const infer = (body: unknown, headers?: Record<string, string>) => request(`${base}/infer`, postJson(body, headers));
    const expect400 = async (body: unknown, pattern: RegExp) => {
      const err = await errorOf(await infer(body));
      expect(err.status).toBe(400);
      expect(err.error).toMatch(pattern);
    };
    const withInput = (i: number, change: Partial<InputJson> | ((x: InputJson) => InputJson)) => ({
      inputs: example.inputs.map((x, j) => (j === i ? (typeof change === 'function' ? change(x) : { ...x, ...change }) : x)),
    });

    beforeAll(async () => {
      const target = await setup();
      ({ request, name } = target);
      base = `/v2/models/${name}`;
      meta = (await (await request(base)).json()) as ModelMeta;
      example = target.example ?? zeroRequest(meta);

    });

    it('answers live, ready and server metadata', async () => {
      const live = await request('/v2/health/live');
      expect(live.status).toBe(200);
      expect(await live.json()).toEqual({ live: true });
      const ready = await request('/v2/health/ready');
      expect(ready.status).toBe(200);
      const server = (await (await request('/v2')).json()) as { name: string; version: string; extensions: string[] };
      expect(server.name).toBe('modelfn');
      expect(typeof server.version).toBe('string');
      expect(server.extensions).toEqual(expect.arrayContaining(['binary_tensor_data', 'classification']));
    });

    it('describes the model with protocol datatypes and -1 for dynamic dimensions', async () => {
      expect(meta.name).toBe(name);
      expect(meta.platform).toBe('onnxruntime_onnx');
      expect(meta.inputs.length).toBeGreaterThan(0);
      expect(meta.outputs.length).toBeGreaterThan(0);
      for (const t of [...meta.inputs, ...meta.outputs]) {
        expect(DATATYPES).toContain(t.datatype);
        expect(typeof t.name).toBe('string');
        for (const d of t.shape) expect(Number.isInteger(d) && d >= -1).toBe(true);
      }
      const versioned = await request(`${base}/versions/${meta.versions[0]}`);
      expect(await versioned.json()).toEqual(meta);
      expect((await request(`${base}/ready`)).status).toBe(200);
      expect((await request(`${base}/versions/${meta.versions[0]}/ready`)).status).toBe(200);
    });

    it('answers 404 JSON for an unknown model, version or route', async () => {
      for (const path of ['/v2/models/no-such-model', '/v2/models/no-such-model/ready']) {
        const err = await errorOf(await request(path));
        expect(err.status).toBe(404);
        expect(err.error).toContain('no-such-model');
      }
      const unknownInfer = await errorOf(await request('/v2/models/no-such-model/infer', postJson(example)));
      expect(unknownInfer.status).toBe(404);
      expect((await errorOf(await request(`${base}/versions/999`))).status).toBe(404);
      expect((await errorOf(await request('/no/such/route'))).status).toBe(404);
    });

    it('answers 405 with Allow for a wrong method, and 415 for an unsupported content type', async () => {
      const res = await request(`${base}/infer`);
      expect(res.headers.get('allow')).toBe('POST');
      expect((await errorOf(res)).status).toBe(405);
      const typed = await errorOf(await request(`${base}/infer`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify(example) }));
      expect(typed.status).toBe(415);
      expect(typed.error).toContain('text/plain');
    });

    it('infers the example, echoes the id and returns every output', async () => {
      const res = await infer({ id: 'conformance-1', ...example });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { model_name: string; id: string; outputs: InputJson[] };
      expect(body.model_name).toBe(name);
      expect(body.id).toBe('conformance-1');
      expect(body.outputs.map((o) => o.name)).toEqual(meta.outputs.map((o) => o.name));
      for (const out of body.outputs) {
        expect(out.data.length).toBe(count(out.shape));
        expect(out.datatype).toBe(meta.outputs.find((o) => o.name === out.name)!.datatype);
      }
    });

    it('gives identical outputs for flat and nested data', async () => {
      const flat = await (await infer(example)).json();
      const nested = await (await infer({ inputs: example.inputs.map((x) => ({ ...x, data: nest(x.data, x.shape) })) })).json();
      expect(nested).toEqual(flat);
    });

    it('returns only the outputs asked for', async () => {
      const last = meta.outputs[meta.outputs.length - 1].name;
      const body = (await (await infer({ ...example, outputs: [{ name: last }] })).json()) as { outputs: { name: string }[] };
      expect(body.outputs.map((o) => o.name)).toEqual([last]);
    });

    it('takes binary inputs and returns binary outputs equal to the JSON ones', async () => {
      const json = (await (await infer(example)).json()) as { outputs: InputJson[] };
      const header = {
        inputs: example.inputs.map(({ data, ...x }) => ({ ...x, parameters: { binary_data_size: encodeBinary(x.datatype, data).length } })),
        parameters: { binary_data_output: true },
      };
      const res = await request(`${base}/infer`, binaryRequest(header, example.inputs.map((x) => encodeBinary(x.datatype, x.data))));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/octet-stream');
      const { header: out, binary } = await readBinaryResponse(res);
      let pos = 0;
      for (const [i, o] of (out.outputs as (InputJson & { parameters: { binary_data_size: number } })[]).entries()) {
        const size = o.parameters.binary_data_size;
        expect(o.data).toBeUndefined();
        const values = decodeBinary(o.datatype, binary.subarray(pos, pos + size));
        // JSON prints FP32 as the shortest decimal of the float32: read back as float32, it is the binary value.
        const asSent = (v: unknown) => (v === null ? NaN : o.datatype === 'FP32' ? Math.fround(v as number) : v);
        expect(values).toEqual(json.outputs[i].data.map(asSent));
        pos += size;
      }
      expect(pos).toBe(binary.length);
    });

    it('refuses malformed requests with 400 and a message naming the problem', async () => {
      const first = example.inputs[0];
      await expect400('{"inputs": [', /^the request body is not valid JSON/);
      await expect400({}, /inputs/);
      await expect400({ inputs: 'x' }, /inputs/);
      await expect400(withInput(0, { name: 'no_such_input' }), /unknown input 'no_such_input'/);
      if (example.inputs.length > 0) await expect400({ inputs: example.inputs.slice(1) }, new RegExp(`missing input '${first.name}'`));
      const other = first.datatype === 'FP64' ? 'FP32' : 'FP64';
      await expect400(withInput(0, { datatype: other }), new RegExp(`input '${first.name}'.*${other}.*${first.datatype}`));
      await expect400(withInput(0, { datatype: first.datatype.toLowerCase() }), /uppercase/);
      await expect400(withInput(0, { shape: [...first.shape, 1] }), /rank/);
      await expect400(withInput(0, { shape: first.shape.map((d, i) => (i === 0 ? -1 : d)) }), /non-negative/);
      if (first.shape.length > 0) await expect400(withInput(0, { shape: first.shape.map(() => 1e12) }), /elements|dimension/);
      const wrongLength = count(first.shape) > 0 ? first.data.slice(1) : [zero(first.datatype)];
      await expect400(withInput(0, { data: wrongLength }), new RegExp(`input '${first.name}'`));
      if (count(first.shape) > 0) await expect400(withInput(0, { data: first.data.map(() => (first.datatype === 'BYTES' ? 1 : 'text')) }), /element 0/);
      await expect400({ ...example, outputs: [{ name: 'no_such_output' }] }, /unknown output 'no_such_output'/);
      await expect400({ ...example, outputs: [{ name: meta.outputs[0].name, parameters: { classification: 0 } }] }, /classification/);
      const fixed = meta.inputs[0].shape.findIndex((d) => d > 0);
      if (fixed >= 0) {
        await expect400(withInput(0, (x) => {
          const shape = x.shape.map((d, i) => (i === fixed ? d + 1 : d));
          return { ...x, shape, data: new Array(count(shape)).fill(zero(x.datatype)) };
        }), new RegExp(`dimension ${fixed}`));
      }
    });

    it('refuses inconsistent binary requests with 400', async () => {
      const x = example.inputs[0];
      const bytes = encodeBinary(x.datatype, x.data);
      const header = { inputs: example.inputs.map(({ data, ...t }, i) => (i === 0 ? { ...t, parameters: { binary_data_size: bytes.length + 1 } } : { ...t, data })) };
      const tooShort = await errorOf(await request(`${base}/infer`, binaryRequest(header, [bytes])));
      expect(tooShort.status).toBe(400);
      const both = { inputs: example.inputs.map((t, i) => (i === 0 ? { ...t, parameters: { binary_data_size: bytes.length } } : t)) };
      expect((await errorOf(await request(`${base}/infer`, binaryRequest(both, [bytes])))).error).toMatch(/both/);
      expect((await errorOf(await request(`${base}/infer`, binaryRequest(header, [bytes], '999999')))).status).toBe(400);
      const noHeader = await errorOf(await infer({ inputs: [{ ...x, data: undefined, parameters: { binary_data_size: bytes.length } }] }));
      expect(noHeader.error).toMatch(/Inference-Header-Content-Length/);
    });

    it('never fails on zero-element tensors', async () => {
      const dynamic = meta.inputs[0].shape.findIndex((d) => d < 0);
      const shape = example.inputs[0].shape.map((d, i) => (i === (dynamic >= 0 ? dynamic : 0) ? 0 : d));
      const res = await infer(withInput(0, { shape, data: [] }));
      expect(res.status).toBeLessThan(500);
      expect(res.headers.get('content-type')).toContain('application/json');
    });

    it('classifies a numeric output as "<score>:<index>[:<label>]" strings', async () => {
      const numeric = meta.outputs.find((o) => o.datatype !== 'BYTES' && o.datatype !== 'BOOL');
      if (!numeric) return;
      const res = await infer({ ...example, outputs: [{ name: numeric.name, parameters: { classification: 1 } }] });
      expect(res.status).toBe(200);
      const out = ((await res.json()) as { outputs: InputJson[] }).outputs[0];
      expect(out.datatype).toBe('BYTES');
      expect(out.data.length).toBe(count(out.shape));
      for (const s of out.data) expect(s).toMatch(/^-?[\d.e+-]+:\d+(:.+)?$|^(NaN|-?Infinity):\d+/);
    });

    it('takes gzip and deflate request bodies as if sent plain, JSON and binary; 415 for an unknown coding', async () => {
      const plain = await (await infer(example)).json();
      const gzipped = await request(`${base}/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: gzipSync(JSON.stringify(example)) });
      expect(gzipped.status).toBe(200);
      expect(await gzipped.json()).toEqual(plain);
      // As Triton's client sends it: zlib data, Inference-Header-Content-Length of the decoded body.
      const header = { inputs: example.inputs.map(({ data, ...x }) => ({ ...x, parameters: { binary_data_size: encodeBinary(x.datatype, data).length } })) };
      const binary = binaryRequest(header, example.inputs.map((x) => encodeBinary(x.datatype, x.data)));
      const deflated = await request(`${base}/infer`, {
        method: 'POST',
        headers: { ...(binary.headers as Record<string, string>), 'Content-Encoding': 'deflate' },
        body: deflateSync(binary.body as Buffer) as Uint8Array<ArrayBuffer>,
      });
      expect(deflated.status).toBe(200);
      expect(await deflated.json()).toEqual(plain);
      const unknown = await request(`${base}/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'compress' }, body: JSON.stringify(example) });
      expect(unknown.headers.get('accept-encoding')).toBe('gzip, deflate, identity');
      expect(await errorOf(unknown)).toEqual({ status: 415, error: "unsupported Content-Encoding 'compress'; send the body as gzip, deflate or identity" });
    });

    it('answers 413 to a small gzip body that inflates past the body limit', async () => {
      const res = await request(`${base}/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: compressionBomb() as Uint8Array<ArrayBuffer> });
      const err = await errorOf(res);
      expect(err.status).toBe(413);
      expect(err.error).toMatch(/once decompressed$/);
    });

    it('compresses answers for Accept-Encoding gzip or deflate when they are large enough to gain, JSON and binary', async () => {
      // 64 times the example when every input's first dimension is free, for an answer worth compressing.
      const batchable = meta.inputs.every((t) => t.shape[0] === -1);
      const batched = batchable
        ? { inputs: example.inputs.map((x) => ({ ...x, shape: [x.shape[0] * 64, ...x.shape.slice(1)], data: new Array(64).fill(x.data).flat() })) }
        : example;
      const plainRes = await infer(batched);
      expect(plainRes.status).toBe(200);
      const plain = await decodedBody(plainRes);
      const gz = await infer(batched, { 'Accept-Encoding': 'gzip' });
      expect(gz.headers.get('content-encoding')).toBe(plain.length >= 1024 ? 'gzip' : null);
      expect((await decodedBody(gz)).toString()).toBe(plain.toString());
      const header = { ...batched, parameters: { binary_data_output: true } };
      const bin = await infer(header, { 'Accept-Encoding': 'deflate' });
      expect(bin.status).toBe(200);
      const binPlain = await infer(header);
      // Inference-Header-Content-Length counts the decoded body, compressed or not.
      expect(bin.headers.get('inference-header-content-length')).toBe(binPlain.headers.get('inference-header-content-length'));
      expect([null, 'deflate']).toContain(bin.headers.get('content-encoding'));
      expect(await decodedBody(bin)).toEqual(await decodedBody(binPlain));
    });

    it('reads INT64 and UINT64 in JSON exactly up to their limits, and writes them exactly', async () => {
      // Every 64-bit output in JSON carries the same integers as its binary form, digit for digit.
      const text = (await decodedBody(await infer(example))).toString();
      const { header, binary } = await readBinaryResponse(await infer({ ...example, parameters: { binary_data_output: true } }));
      let pos = 0;
      for (const o of header.outputs as (InputJson & { parameters: { binary_data_size: number } })[]) {
        const size = o.parameters.binary_data_size;
        if (o.datatype === 'INT64' || o.datatype === 'UINT64') {
          const json = new RegExp(`"name":${JSON.stringify(o.name).replace(/[[\]\\^$.|?*+()]/g, '\\$&')},"datatype":"${o.datatype}","shape":\\[[^\\]]*\\],"data":\\[([^\\]]*)\\]`).exec(text);
          expect(json, text.slice(0, 300)).not.toBeNull();
          const view = binary.subarray(pos, pos + size);
          const exact = Array.from({ length: size / 8 }, (_, i) => String(o.datatype === 'INT64' ? view.readBigInt64LE(i * 8) : view.readBigUInt64LE(i * 8)));
          expect(json![1] === '' ? [] : json![1].split(',')).toEqual(exact);
        }
        pos += size;
      }
      // 64-bit inputs: the type's own limits decide, not those of a double.
      for (const [i, spec] of meta.inputs.entries()) {
        if (spec.datatype !== 'INT64' && spec.datatype !== 'UINT64') continue;
        const x = example.inputs[i];
        if (count(x.shape) === 0) continue;
        const past = spec.datatype === 'INT64' ? '9223372036854775808' : '18446744073709551616';
        const limit = spec.datatype === 'INT64' ? '9223372036854775807' : '18446744073709551615';
        const body = (value: string) => JSON.stringify(withInput(i, { data: x.data.map((_, j) => (j === 0 ? '@' : _)) })).replace('"@"', value);
        const refused = await errorOf(await infer(body(past)));
        expect(refused.status).toBe(400);
        expect(refused.error).toContain(`element 0 is ${past}, expected an integer from`);
        expect(refused.error).toContain(limit);
        // Within the limits, beyond 2^53: the request decodes (the model may still refuse the value).
        const within = await infer(body('9007199254740993'));
        if (within.status !== 200) expect((await errorOf(within)).error).not.toMatch(/expected an integer/);
      }
    });

    it('exports Prometheus metrics', async () => {
      const res = await request('/metrics');
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toMatch(/modelfn_http_requests_total\{.*route="\/v2\/models\/[^"]+\/infer".*\} \d+/);
      expect(text).toContain('modelfn_model_load_seconds');
      expect(text).toContain('modelfn_requests_in_flight');
    });
  });
}
