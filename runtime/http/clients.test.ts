/**
 * What standard Open Inference Protocol clients send (Triton's tritonclient.http, KServe's and
 * MLServer's): parameters the server has no use for, binary outputs chosen per request or per
 * output, classification, and `outputs` left out or empty.
 */
import { deflateSync, gunzipSync } from 'node:zlib';
import type { Hono } from 'hono';
import { beforeAll, describe, expect, it } from 'vitest';
import { binaryRequest, decodeBinary, openFunctionDir, postJson, readBinaryResponse } from '../testing/index.ts';

const ROW = [5.1, 3.5, 1.4, 0.2];
const input = (parameters?: Record<string, unknown>) => ({ name: 'input', datatype: 'FP32', shape: [1, 4], data: ROW, ...(parameters ? { parameters } : {}) });
/** FP32 from JSON as the float32 it names (JSON prints the shortest decimal of each float32). */
const fp32 = (data: unknown[] | undefined) => data?.map((v) => Math.fround(v as number));

interface Output { name: string; datatype: string; shape: number[]; data?: unknown[]; parameters?: { binary_data_size: number } }

describe('options of standard clients', () => {
  let iris: Hono;
  let digits: Hono;
  let plain: { outputs: Output[] };
  const infer = (app: Hono, body: unknown, headers?: Record<string, string>) => app.request(`/v2/models/${app === iris ? 'iris' : 'digits'}/infer`, postJson(body, headers));

  beforeAll(async () => {
    ({ app: iris } = await openFunctionDir('functions/iris'));
    ({ app: digits } = await openFunctionDir('functions/digits'));
    plain = (await (await infer(iris, { inputs: [input()] })).json()) as { outputs: Output[] };
  });

  it('ignores request and tensor parameters it has no use for: priority, timeout, sequence ids, unknown keys', async () => {
    const res = await infer(iris, {
      id: 'r1',
      parameters: { priority: 2, timeout: 1_000_000, sequence_id: 42, sequence_start: true, sequence_end: false, my_key: { nested: [1] } },
      inputs: [input({ shared_memory_region: undefined, my_flag: true })],
      outputs: [{ name: 'probabilities', parameters: { my_key: 'x' } }, { name: 'label' }],
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ model_name: 'iris', model_version: '1', id: 'r1', outputs: plain.outputs });
    const sequence = await infer(iris, { parameters: { sequence_id: 'session-a' }, inputs: [input()] });
    expect(sequence.status).toBe(200);
  });

  it('returns every output for outputs left out or empty, in JSON and with binary_data_output', async () => {
    for (const outputs of [undefined, []]) {
      expect(((await (await infer(iris, { inputs: [input()], outputs })).json()) as { outputs: Output[] }).outputs).toEqual(plain.outputs);
      const { header, binary } = await readBinaryResponse(await infer(iris, { inputs: [input()], outputs, parameters: { binary_data_output: true } }));
      expect((header.outputs as Output[]).map((o) => [o.name, o.data, o.parameters?.binary_data_size])).toEqual([['probabilities', undefined, 12], ['label', undefined, 8]]);
      expect(decodeBinary('FP32', binary.subarray(0, 12))).toEqual(fp32(plain.outputs[0].data));
      expect(decodeBinary('INT64', binary.subarray(12))).toEqual(plain.outputs[1].data);
    }
  });

  it('lets each output choose binary_data, over the request-level binary_data_output', async () => {
    const mixed = await infer(iris, {
      inputs: [input()],
      parameters: { binary_data_output: true },
      outputs: [{ name: 'probabilities', parameters: { binary_data: false } }, { name: 'label' }],
    });
    const { header, binary } = await readBinaryResponse(mixed);
    expect(header.outputs[0]).toEqual(plain.outputs[0]);
    expect(header.outputs[1]).toEqual({ name: 'label', datatype: 'INT64', shape: [1], parameters: { binary_data_size: 8 } });
    expect(decodeBinary('INT64', binary)).toEqual(plain.outputs[1].data);
    const one = await readBinaryResponse(await infer(iris, { inputs: [input()], outputs: [{ name: 'label' }, { name: 'probabilities', parameters: { binary_data: true } }] }));
    expect(one.header.outputs[0]).toEqual(plain.outputs[1]);
    expect(decodeBinary('FP32', one.binary)).toEqual(fp32(plain.outputs[0].data));
  });

  it('classifies with labels where the function declares them, and by index where it does not, in JSON and binary', async () => {
    const labelled = (await (await infer(iris, { inputs: [input()], outputs: [{ name: 'probabilities', parameters: { classification: 2 } }] })).json()) as { outputs: Output[] };
    const [p] = plain.outputs[0].data as number[];
    expect(labelled.outputs).toEqual([{ name: 'probabilities', datatype: 'BYTES', shape: [1, 2], data: [`${p}:0:setosa`, expect.stringMatching(/^[\d.e-]+:1:versicolor$/)] }]);
    const binary = await readBinaryResponse(await infer(iris, { inputs: [input()], outputs: [{ name: 'probabilities', parameters: { classification: 2, binary_data: true } }] }));
    expect(decodeBinary('BYTES', binary.binary)).toEqual(labelled.outputs[0].data);

    const meta = (await (await digits.request('/v2/models/digits')).json()) as { inputs: { name: string; shape: number[] }[]; outputs: { name: string; datatype: string }[] };
    const scores = meta.outputs.find((o) => o.datatype === 'FP32')!;
    const zeros = { inputs: [{ name: meta.inputs[0].name, datatype: 'FP32', shape: [1, 64], data: new Array(64).fill(0) }] };
    const raw = ((await (await infer(digits, { ...zeros, outputs: [{ name: scores.name }] })).json()) as { outputs: Output[] }).outputs[0].data as number[];
    const best = raw.indexOf(Math.max(...raw));
    const unlabelled = (await (await infer(digits, { ...zeros, outputs: [{ name: scores.name, parameters: { classification: 1 } }] })).json()) as { outputs: Output[] };
    expect(unlabelled.outputs[0].data).toEqual([`${raw[best]}:${best}`]);
  });

  it("takes a request as tritonclient.http builds it: binary input, deflate body, Accept-Encoding gzip", async () => {
    const header = {
      id: 'triton-1',
      parameters: { sequence_id: 3, sequence_start: true, sequence_end: true, priority: 1, timeout: 500, binary_data_output: true },
      inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } }],
    };
    const request = binaryRequest(header, [new Uint8Array(Float32Array.from(ROW).buffer)]);
    const res = await iris.request('/v2/models/iris/infer', {
      method: 'POST',
      headers: { ...(request.headers as Record<string, string>), 'Content-Encoding': 'deflate', 'Accept-Encoding': 'gzip' },
      body: deflateSync(request.body as Buffer) as BodyInit,
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    // Small answers go plain; tritonclient reads both.
    const decoded = res.headers.get('content-encoding') === 'gzip' ? gunzipSync(body) : body;
    const length = Number(res.headers.get('inference-header-content-length'));
    expect(JSON.parse(decoded.subarray(0, length).toString())).toMatchObject({ id: 'triton-1', outputs: [{ name: 'probabilities', parameters: { binary_data_size: 12 } }, { name: 'label', parameters: { binary_data_size: 8 } }] });
    expect(decodeBinary('FP32', decoded.subarray(length, length + 12))).toEqual(fp32(plain.outputs[0].data));
  });
});
