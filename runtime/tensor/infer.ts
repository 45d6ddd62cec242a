/**
 * The inference request and response of the Open Inference Protocol, JSON and binary forms:
 * parsing, validation against a model's signature (its tensor specs), and encoding the answer.
 * Knows nothing of HTTP or of where the model runs.
 */
import type ort from 'onnxruntime-node';
import { classify, elementCount, shapeMismatch, shapeText, tensorFromBinary, tensorFromJson, tensorToBytes, tensorToJsonData } from './codec.ts';
import { DATATYPES } from './datatypes.ts';
import { invalidInput } from '../core/errors.ts';
import { withExactIntegers } from './json-exact.ts';
import type { Feeds, TensorSpec } from './types.ts';

/** Header naming the length of the JSON part of a binary request or response. */
export const HEADER_LENGTH = 'inference-header-content-length';

/** The protocol's extensions this codec implements, as server metadata names them. */
export const EXTENSIONS = ['binary_tensor_data', 'classification'] as const;

/** What decoding and encoding need to know of a model: its name, version, tensors and labels. */
export interface ModelSignature {
  name: string;
  version: string;
  inputs: ReadonlyMap<string, TensorSpec>;
  outputs: ReadonlyMap<string, TensorSpec>;
  /** Class labels of an output, for the classification extension. */
  labelsFor?(output: string): readonly string[] | undefined;
}

export interface RequestedOutput {
  name: string;
  binary: boolean;
  classification?: number;
}

export interface InferRequest {
  id?: string;
  feeds: Feeds;
  /** Outputs to return, in order. */
  outputs: RequestedOutput[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** A client's name for a message, cut short. */
function nameText(name: string): string {
  return name.length > 60 ? `${name.slice(0, 57)}...` : name;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parameters(where: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (!isObject(v)) throw invalidInput(`${where}: 'parameters' must be an object`);
  return v;
}

/**
 * Splits a request body into its JSON header and binary part, and parses the JSON.
 * `headerLength` is the Inference-Header-Content-Length header, if sent.
 */
export function parseBody(body: Uint8Array, headerLength: string | undefined): { json: unknown; text: string; binaryStart: number } {
  let end = body.length;
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!/^\d+$/.test(headerLength.trim()) || !Number.isSafeInteger(n) || n <= 0 || n > body.length) {
      throw invalidInput(`Inference-Header-Content-Length is ${JSON.stringify(headerLength.slice(0, 30))}, but must be a positive integer no larger than the body (${body.length} bytes)`);
    }
    end = n;
  }
  if (end === 0) throw invalidInput('request body is empty; expected a JSON inference request');
  let text: string;
  try {
    text = utf8.decode(body.subarray(0, end));
  } catch {
    throw invalidInput('request JSON is not valid UTF-8');
  }
  try {
    return { json: JSON.parse(text), text, binaryStart: end };
  } catch (err) {
    throw invalidInput(notJson(err));
  }
}

function checkShapeAgainst(where: string, spec: TensorSpec, shape: readonly number[]): void {
  const mismatch = shapeMismatch(spec.shape, shape);
  if (!mismatch) return;
  const expected = `[${spec.shape.join(',')}]`;
  if ('rank' in mismatch) {
    throw invalidInput(`${where}: shape ${shapeText(shape)} has rank ${shape.length}, the model expects rank ${spec.shape.length} (${expected}, -1 = any size)`);
  }
  const i = mismatch.dimension;
  throw invalidInput(`${where}: shape ${shapeText(shape)} has ${shape[i]} at dimension ${i}, the model expects ${expected} (-1 = any size)`);
}

/**
 * Parses and validates an inference request against the model's inputs and outputs and
 * decodes its tensors. Every problem is a 400 naming the tensor and what is wrong.
 * Request and tensor `parameters` the server has no use for (priority, timeout, sequence ids,
 * a client's own keys) are ignored, as standard clients expect.
 */
export function decodeInferRequest(model: ModelSignature, body: Uint8Array, headerLength: string | undefined, maxElements: number): InferRequest {
  const { json, text, binaryStart } = parseBody(body, headerLength);
  return withExactIntegers(text, json, (parsed) => decodeParsedRequest(model, parsed, body, binaryStart, headerLength, maxElements));
}

function decodeParsedRequest(model: ModelSignature, json: unknown, body: Uint8Array, binaryStart: number, headerLength: string | undefined, maxElements: number): InferRequest {
  if (!isObject(json)) throw invalidInput('inference request must be a JSON object with an "inputs" array');
  const { id, inputs, outputs } = json;
  if (id !== undefined && typeof id !== 'string') throw invalidInput("'id' must be a string");
  if (!Array.isArray(inputs)) throw invalidInput("inference request needs an 'inputs' array");
  const requestParams = parameters('request', json.parameters);
  const binaryByDefault = requestParams.binary_data_output === true;

  const feeds: Feeds = {};
  let offset = binaryStart;
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    if (!isObject(input)) throw invalidInput(`inputs[${i}] must be an object with name, shape, datatype and data`);
    const { name, datatype, shape, data } = input;
    if (typeof name !== 'string') throw invalidInput(`inputs[${i}]: 'name' must be a string`);
    const where = `input '${nameText(name)}'`;
    const spec = model.inputs.get(name);
    if (!spec) throw invalidInput(`unknown input '${nameText(name)}'; the model's inputs are: ${[...model.inputs.keys()].join(', ')}`);
    if (feeds[name]) throw invalidInput(`${where} is given twice`);
    if (typeof datatype !== 'string') throw invalidInput(`${where}: 'datatype' must be a string such as ${spec.datatype}`);
    const info = DATATYPES.get(datatype);
    if (!info) {
      const hint = DATATYPES.has(datatype.toUpperCase()) ? ` (datatypes are uppercase: ${datatype.toUpperCase()})` : '';
      throw invalidInput(`${where}: unknown datatype ${JSON.stringify(datatype.slice(0, 20))}${hint}`);
    }
    if (info !== spec.info) throw invalidInput(`${where}: datatype ${datatype} does not match the model's ${spec.datatype}`);
    const count = elementCount(where, shape, maxElements);
    checkShapeAgainst(where, spec, shape as number[]);
    const size = parameters(where, input.parameters).binary_data_size;
    if (size !== undefined) {
      if (data !== undefined) throw invalidInput(`${where} has both 'data' and binary_data_size; send one`);
      if (headerLength === undefined) throw invalidInput(`${where} has binary_data_size but the request has no Inference-Header-Content-Length header`);
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalidInput(`${where}: binary_data_size must be a non-negative integer`);
      if (offset + size > body.length) {
        throw invalidInput(`${where}: binary_data_size ${size} runs past the end of the body (${body.length - offset} bytes left)`);
      }
      feeds[name] = tensorFromBinary(where, info, shape as number[], count, body, offset, size);
      offset += size;
    } else {
      if (data === undefined) throw invalidInput(`${where} has no 'data' (nor binary_data_size)`);
      feeds[name] = tensorFromJson(where, info, shape as number[], count, data);
    }
  }
  if (offset !== body.length) {
    throw invalidInput(`binary data is ${body.length - binaryStart} bytes, but the inputs' binary_data_size add up to ${offset - binaryStart}`);
  }
  for (const spec of model.inputs.values()) {
    if (!feeds[spec.name]) throw invalidInput(`missing input '${spec.name}' (${spec.datatype} [${spec.shape.join(',')}])`);
  }

  let requested: RequestedOutput[];
  if (outputs !== undefined && !Array.isArray(outputs)) throw invalidInput("'outputs' must be an array");
  // No outputs named, or an empty list (as Triton takes it): every output.
  if (outputs === undefined || outputs.length === 0) {
    requested = [...model.outputs.keys()].map((name) => ({ name, binary: binaryByDefault }));
  } else {
    requested = outputs.map((o, i) => {
      if (!isObject(o) || typeof o.name !== 'string') throw invalidInput(`outputs[${i}] must be an object with a 'name'`);
      if (!model.outputs.has(o.name)) {
        throw invalidInput(`unknown output '${nameText(o.name)}'; the model's outputs are: ${[...model.outputs.keys()].join(', ')}`);
      }
      const p = parameters(`output '${o.name}'`, o.parameters);
      const k = p.classification;
      if (k !== undefined && (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 1)) {
        throw invalidInput(`output '${o.name}': classification must be a positive integer`);
      }
      const binary = p.binary_data === undefined ? binaryByDefault : p.binary_data === true;
      return { name: o.name, binary, classification: k as number | undefined };
    });
  }
  return { id: id as string | undefined, feeds, outputs: requested };
}

/**
 * What a client is told of JSON that does not parse: where, in our words. The parser's own
 * message differs between Node versions and is not ours to publish.
 */
export function notJson(err: unknown): string {
  const at = /position (\d+)/.exec(String((err as Error)?.message ?? ''))?.[1];
  return `the request body is not valid JSON${at === undefined ? '' : ` (at character ${Number(at) + 1})`}`;
}

export interface EncodedResponse {
  body: string | Uint8Array;
  /** Set when the response carries binary outputs. */
  headerLength?: number;
}

/** Encodes an inference response; outputs asked for in binary follow the JSON header. */
export function encodeInferResponse(model: ModelSignature, request: InferRequest, fetches: Record<string, ort.Tensor>): EncodedResponse {
  let json = `{"model_name":${JSON.stringify(model.name)},"model_version":${JSON.stringify(model.version)}`;
  if (request.id !== undefined) json += `,"id":${JSON.stringify(request.id)}`;
  json += ',"outputs":[';
  const chunks: Uint8Array[] = [];
  request.outputs.forEach((out, i) => {
    const tensor = fetches[out.name];
    let datatype = model.outputs.get(out.name)!.datatype as string;
    let shape: readonly number[] = tensor.dims;
    let dataJson: () => string = () => tensorToJsonData(tensor);
    let bytes: () => Uint8Array = () => tensorToBytes(tensor);
    if (out.classification !== undefined) {
      const classes = classify(`output '${out.name}'`, tensor, out.classification, model.labelsFor?.(out.name));
      datatype = 'BYTES';
      shape = classes.shape;
      dataJson = () => JSON.stringify(classes.data);
      bytes = () => tensorToBytes({ type: 'string', data: classes.data } as unknown as ort.Tensor);
    }
    json += `${i ? ',' : ''}{"name":${JSON.stringify(out.name)},"datatype":"${datatype}","shape":[${shape.join(',')}]`;
    if (out.binary) {
      const b = bytes();
      chunks.push(b);
      json += `,"parameters":{"binary_data_size":${b.byteLength}}}`;
    } else {
      json += `,"data":${dataJson()}}`;
    }
  });
  json += ']}';
  if (!chunks.length) return { body: json };
  const header = encoder.encode(json);
  let total = header.byteLength;
  for (const c of chunks) total += c.byteLength;
  const body = new Uint8Array(total);
  body.set(header, 0);
  let pos = header.byteLength;
  for (const c of chunks) {
    body.set(c, pos);
    pos += c.byteLength;
  }
  return { body, headerLength: header.byteLength };
}
