// The tensor codecs and the protocol's request/response codec alone: no model, no HTTP, no host.
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ModelfnError } from '../core/errors.ts';
import { classify, elementCount, tensorFromBinary, tensorFromJson, tensorToBytes, tensorToJsonData } from './codec.ts';
import { DATATYPES } from './datatypes.ts';
import { decodeInferRequest, encodeInferResponse, type ModelSignature } from './infer.ts';
import type { TensorSpec } from './types.ts';

const info = (datatype: string) => DATATYPES.get(datatype)!;
const spec = (name: string, datatype: string, shape: number[]): TensorSpec => ({ name, datatype: datatype as TensorSpec['datatype'], shape, info: info(datatype) });
const signature: ModelSignature = {
  name: 'm',
  version: '1',
  inputs: new Map([['x', spec('x', 'FP32', [-1, 2])]]),
  outputs: new Map([['y', spec('y', 'FP32', [-1, 3])]]),
  labelsFor: () => ['a', 'b', 'c'],
};
const utf8 = (text: string) => new TextEncoder().encode(text);
const failure = (work: () => unknown) => {
  try {
    work();
  } catch (err) {
    expect(err).toBeInstanceOf(ModelfnError);
    return `${(err as ModelfnError).kind} ${(err as ModelfnError).message}`;
  }
  throw new Error('expected a failure');
};

describe('tensor codecs', () => {
  it('read flat or nested JSON data into one typed array, and write it back flat', () => {
    const flat = tensorFromJson('x', info('INT32'), [2, 2], 4, [1, 2, 3, 4]);
    const nested = tensorFromJson('x', info('INT32'), [2, 2], 4, [[1, 2], [3, 4]]);
    expect(flat.data).toBeInstanceOf(Int32Array);
    expect([...(nested.data as Int32Array)]).toEqual([1, 2, 3, 4]);
    expect(tensorToJsonData(flat)).toBe('[1,2,3,4]');
    expect(tensorToJsonData(tensorFromJson('b', info('BOOL'), [2], 2, [true, false]))).toBe('[true,false]');
  });

  it('name the tensor, the element and what was expected when data is wrong', () => {
    expect(failure(() => tensorFromJson("input 'x'", info('INT32'), [2], 2, [1, 'two']))).toMatch(/^invalid_input input 'x': element 1 is "two", expected .* for INT32$/);
    expect(failure(() => elementCount("input 'x'", [2, -1], 100))).toMatch(/^invalid_input input 'x': /);
    expect(failure(() => elementCount("input 'x'", [1000, 1000], 100))).toMatch(/^invalid_input input 'x': .*100/);
    expect(elementCount('x', [2, 3, 0], 100)).toBe(0);
  });

  it('read binary data as a view of the request when aligned, and write the raw little-endian bytes', () => {
    const values = new Float32Array([1.5, -2, 3, 4]);
    const body = new Uint8Array(8 + 16);
    body.set(new Uint8Array(values.buffer), 8);
    const tensor = tensorFromBinary("input 'x'", info('FP32'), [2, 2], 4, body, 8, 16);
    expect([...(tensor.data as Float32Array)]).toEqual([1.5, -2, 3, 4]);
    expect((tensor.data as Float32Array).buffer).toBe(body.buffer);
    expect([...tensorToBytes(tensor)]).toEqual([...new Uint8Array(values.buffer)]);
    expect(failure(() => tensorFromBinary("input 'x'", info('FP32'), [2, 2], 4, body, 8, 12))).toMatch(/^invalid_input input 'x': /);
  });

  it('classify the top k of each row, with labels when there are some', () => {
    const scores = new ort.Tensor('float32', new Float32Array([0.1, 0.7, 0.2, 0.5, 0.2, 0.3]), [2, 3]);
    expect(classify('y', scores, 1, ['a', 'b', 'c'])).toEqual({ shape: [2, 1], data: ['0.7:1:b', '0.5:0:a'] });
    // FP32 scores as the shortest decimal of the float32, the rule of every JSON answer.
    expect(Math.fround(0.7)).not.toBe(0.7);
    expect(classify('y', scores, 2).shape).toEqual([2, 2]);
  });
});

describe('the protocol request and response, from a signature alone', () => {
  it('decodes inputs against the specs and answers in JSON and in binary', () => {
    const request = decodeInferRequest(signature, utf8(JSON.stringify({ id: 'r1', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }], outputs: [{ name: 'y' }, { name: 'y', parameters: { classification: 1 } }] })), undefined, 1000);
    expect(request.id).toBe('r1');
    expect(request.feeds.x.dims).toEqual([1, 2]);
    const fetches = { y: new ort.Tensor('float32', new Float32Array([0.2, 0.5, 0.3]), [1, 3]) };
    const json = encodeInferResponse(signature, request, fetches);
    expect(JSON.parse(json.body as string)).toEqual({
      model_name: 'm', model_version: '1', id: 'r1',
      outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 3], data: [0.2, 0.5, 0.3] }, { name: 'y', datatype: 'BYTES', shape: [1, 1], data: ['0.5:1:b'] }],
    });
    const binary = encodeInferResponse(signature, { ...request, outputs: [{ name: 'y', binary: true }] }, fetches);
    expect(binary.headerLength).toBeGreaterThan(0);
    const header = JSON.parse(new TextDecoder().decode((binary.body as Uint8Array).subarray(0, binary.headerLength)));
    expect(header.outputs[0].parameters).toEqual({ binary_data_size: 12 });
  });

  it('refuses a request that does not fit the signature with a 400 naming what is wrong', () => {
    const decode = (body: unknown) => () => decodeInferRequest(signature, utf8(JSON.stringify(body)), undefined, 1000);
    expect(failure(decode({ inputs: [{ name: 'z', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] }))).toBe("invalid_input unknown input 'z'; the model's inputs are: x");
    expect(failure(decode({ inputs: [{ name: 'x', datatype: 'INT64', shape: [1, 2], data: [1, 2] }] }))).toBe("invalid_input input 'x': datatype INT64 does not match the model's FP32");
    expect(failure(decode({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] }))).toMatch(/^invalid_input input 'x': shape \[1,3\] has 3 at dimension 1, the model expects \[-1,2\]/);
    expect(failure(decode({ inputs: [] }))).toBe("invalid_input missing input 'x' (FP32 [-1,2])");
    expect(failure(decode({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }], outputs: [{ name: 'w' }] }))).toBe("invalid_input unknown output 'w'; the model's outputs are: y");
  });
});
