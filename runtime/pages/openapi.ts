/**
 * A function's OpenAPI 3.1 document, generated from its declaration, its model's metadata and
 * the routes its app really has: the function's own routes, `/predict`, and the protocol routes
 * with the model's datatypes and shapes.
 */
import type { ExampleRequest, ResolvedFunction, RouteDoc } from '../function/define.ts';
import type { TensorSpec } from '../tensor/types.ts';
import type { ModelFacts } from './facts.ts';
import { VERSION } from '../core/version.ts';
import { emptyWindow, summarize } from '../core/stats.ts';
import { EXTENSIONS } from '../tensor/infer.ts';

/** A route the function declared itself (from Hono's `app.routes`). */
export interface CustomRoute {
  method: string;
  path: string;
}

type Json = Record<string, unknown>;

const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

function zero(datatype: string): unknown {
  return datatype === 'BOOL' ? false : datatype === 'BYTES' ? '' : 0;
}

/** The JSON type of one element of a datatype. */
function elementSchema(datatype: string): Json {
  if (datatype === 'BOOL') return { type: 'boolean' };
  if (datatype === 'BYTES') return { type: 'string' };
  if (datatype.startsWith('FP')) return { type: 'number' };
  return { type: 'integer' };
}

/**
 * The function's example request: the declared one, else zeros from the model's metadata with
 * every dynamic dimension set to 1.
 *
 * @example exampleRequest(fn, model.inputs) // { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] }] }
 */
export function exampleRequest(fn: Pick<ResolvedFunction, 'example'>, inputs: readonly Pick<TensorSpec, 'name' | 'datatype' | 'shape'>[]): ExampleRequest {
  if (fn.example) return fn.example;
  return {
    inputs: inputs.map((t) => {
      const shape = t.shape.map((d) => (d < 0 ? 1 : d));
      return { name: t.name, datatype: t.datatype, shape, data: new Array(count(shape)).fill(zero(t.datatype)) };
    }),
  };
}

/** Flat data nested to a shape. */
function nest(data: readonly unknown[], shape: readonly number[]): unknown[] {
  if (shape.length <= 1) return [...data];
  const size = count(shape.slice(1));
  return Array.from({ length: shape[0] }, (_, i) => nest(data.slice(i * size, (i + 1) * size), shape.slice(1)));
}

/** The `instances` of a `/predict` request equal to the example (models with one input). */
function exampleInstances(example: ExampleRequest): unknown[] {
  const [input] = example.inputs;
  const data = input.data.flat(Infinity);
  return input.shape.length === 0 ? data : nest(data, input.shape);
}

function tensorSchema(t: TensorSpec, role: 'input' | 'output'): Json {
  const summary = `${role} '${t.name}': ${t.datatype}, shape ${shapeText(t.shape)}${t.shape.includes(-1) ? ' (-1: any size)' : ''}`;
  return {
    type: 'object',
    title: t.name,
    description: summary,
    required: ['name', 'datatype', 'shape', 'data'],
    properties: {
      name: { const: t.name },
      datatype: { const: t.datatype },
      shape: { type: 'array', items: { type: 'integer', minimum: 0 }, description: `the model's shape is ${shapeText(t.shape)}` },
      data: { type: 'array', description: `${t.datatype} values, flat (row-major) or nested to the shape`, items: { anyOf: [elementSchema(t.datatype), { type: 'array' }] } },
      parameters: { type: 'object' },
    },
  };
}

const ERRORS = {
  '4XX': { $ref: '#/components/responses/Error' },
  '5XX': { $ref: '#/components/responses/Error' },
};

/** The start of a `/metrics` answer, for the docs: the request counter and latency histogram every function has. */
const METRICS_EXAMPLE = [
  '# HELP modelfn_http_requests_total Total number of HTTP requests',
  '# TYPE modelfn_http_requests_total counter',
  'modelfn_http_requests_total{method="POST",route="/predict",status="200",ok="true"} 42',
  '# HELP modelfn_http_request_duration_seconds Duration of HTTP requests in seconds',
  '# TYPE modelfn_http_request_duration_seconds histogram',
  '...',
].join('\n');

const json = (schema: Json, example?: unknown): Json => ({ 'application/json': example === undefined ? { schema } : { schema, example } });

function answer(description: string, schema: Json, example?: unknown): Json {
  return { '200': { description, content: json(schema, example) }, ...ERRORS };
}

/** `/items/:id{[0-9]+}` as `/items/{id}`, with the names of its parameters. */
function openApiPath(path: string): { path: string; params: string[] } {
  const params: string[] = [];
  const converted = path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?\??/g, (_, name: string) => {
    params.push(name);
    return `{${name}}`;
  });
  return { path: converted, params };
}

function operationId(method: string, path: string): string {
  return `${method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+/g, '_').replace(/_$/, '')}`;
}

/** The operation of one of the function's own routes, from its `routeDocs` entry when there is one. */
function customOperation(route: CustomRoute, path: string, params: string[], doc: RouteDoc | undefined): Json {
  const op: Json = {
    tags: ['function'],
    operationId: operationId(route.method, path),
    summary: doc?.summary ?? `${route.method} ${path}`,
  };
  if (doc?.description) op.description = doc.description;
  const parameters = [
    ...params.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
    ...Object.entries(doc?.query ?? {}).map(([name, description]) => ({ name, in: 'query', required: false, description, schema: { type: 'string' } })),
  ];
  if (parameters.length) op.parameters = parameters;
  if (['POST', 'PUT', 'PATCH'].includes(route.method)) {
    const type = doc?.contentType ?? 'application/json';
    const body: Json = type === 'application/json'
      ? (doc?.requestExample === undefined ? { schema: {} } : { schema: {}, example: doc.requestExample })
      : { schema: { type: 'string', contentMediaType: type } };
    op.requestBody = { required: true, content: { [type]: body } };
  }
  if (doc?.exampleFile) op['x-example-file'] = `/examples/${doc.exampleFile.split('/').pop()}`;
  op.responses = answer('the answer', {}, doc?.responseExample);
  return op;
}

/** The function's answers to its example requests, where they are known (the model ran them). */
export interface ExampleAnswers {
  predict?: unknown;
  infer?: unknown;
}

/**
 * The OpenAPI 3.1 document of one function. `serverUrl` is where its routes are reached: its
 * prefix behind the gateway, `/` when it is served alone.
 *
 * @example openApiDocument(fn, model, [{ method: 'POST', path: '/species' }], '/iris')
 */
export function openApiDocument(
  fn: ResolvedFunction,
  model: { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[] },
  routes: readonly CustomRoute[],
  serverUrl = '/',
  known: { answers?: ExampleAnswers; facts?: ModelFacts } = {},
): Json {
  const answers = known.answers ?? {};
  const example = exampleRequest(fn, model.inputs);
  const base = `/v2/models/${fn.name}`;
  const tensors = (specs: readonly TensorSpec[]) => specs.map((s) => ({ name: s.name, datatype: s.datatype, shape: s.shape }));
  const versions = fn.versions.map((v) => v.version);
  const metadata = { name: fn.name, versions, platform: 'onnxruntime_onnx', inputs: tensors(model.inputs), outputs: tensors(model.outputs) };
  const paths: Record<string, Record<string, Json>> = {};
  const add = (path: string, method: string, op: Json) => {
    paths[path] ??= {};
    // The function's own route wins over a built-in one at the same place, as in the app.
    paths[path][method] ??= op;
  };

  for (const route of routes) {
    const { path, params } = openApiPath(route.path);
    if (path.includes('*')) continue;
    add(path, route.method.toLowerCase(), customOperation(route, path, params, fn.routeDocs[`${route.method} ${route.path}`]));
  }

  if (model.inputs.length === 1) {
    const [input] = model.inputs;
    const instance = input.shape.length > 1 ? `${input.datatype}, shape ${shapeText(input.shape.slice(1))}` : input.datatype;
    add('/predict', 'post', {
      tags: ['inference'],
      operationId: 'predict',
      summary: 'Predict: instances in, predictions out',
      description: `Each instance is one row of input '${input.name}' (${instance}); the batch is their list. Each prediction is the matching row of ${model.outputs.length === 1 ? `output '${model.outputs[0].name}'` : `every output (${model.outputs.map((o) => `'${o.name}'`).join(', ')})`}.`,
      requestBody: { required: true, content: json({ $ref: '#/components/schemas/PredictRequest' }, { instances: exampleInstances(example) }) },
      responses: answer('one prediction per instance', { $ref: '#/components/schemas/PredictResponse' }, answers.predict),
    });
  }

  const inferRequest = {
    type: 'object',
    required: ['inputs'],
    properties: {
      id: { type: 'string' },
      parameters: { type: 'object' },
      inputs: { type: 'array', items: { oneOf: model.inputs.map((t) => tensorSchema(t, 'input')) } },
      outputs: {
        type: 'array',
        description: 'the outputs to return (all by default); parameters: binary_data, classification',
        items: { type: 'object', required: ['name'], properties: { name: { enum: model.outputs.map((o) => o.name) }, parameters: { type: 'object' } } },
      },
    },
  };
  const inferResponse = {
    type: 'object',
    required: ['model_name', 'outputs'],
    properties: {
      model_name: { const: fn.name },
      model_version: { type: 'string' },
      id: { type: 'string' },
      parameters: { type: 'object' },
      outputs: { type: 'array', items: { oneOf: model.outputs.map((t) => tensorSchema(t, 'output')) } },
    },
  };
  const version = { name: 'version', in: 'path', required: true, schema: { type: 'string', enum: versions } };
  for (const [path, suffix, params] of [[base, '', []], [`${base}/versions/{version}`, ' (one version)', [version]]] as const) {
    const withParams = (op: Json) => (params.length ? { ...op, parameters: params } : op);
    const id = suffix ? '_version' : '';
    add(`${path}/infer`, 'post', withParams({
      tags: ['inference'],
      operationId: `infer${id}`,
      summary: `Inference, Open Inference Protocol${suffix}`,
      description: `Inputs: ${model.inputs.map((t) => `${t.name} ${t.datatype} ${shapeText(t.shape)}`).join(', ')}. Outputs: ${model.outputs.map((t) => `${t.name} ${t.datatype} ${shapeText(t.shape)}`).join(', ')}. -1 is a dimension of any size. Binary tensors: send application/octet-stream with the Inference-Header-Content-Length header.`,
      requestBody: {
        required: true,
        content: {
          ...json(inferRequest, example),
          'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } },
        },
      },
      responses: answer('the outputs', inferResponse, answers.infer),
    }));
    add(path, 'get', withParams({ tags: ['protocol'], operationId: `model_metadata${id}`, summary: `Model metadata: inputs and outputs${suffix}`, responses: answer('the metadata', { $ref: '#/components/schemas/ModelMetadata' }, metadata) }));
    add(`${path}/ready`, 'get', withParams({ tags: ['protocol'], operationId: `model_ready${id}`, summary: `Model readiness${suffix}`, responses: answer('ready', { type: 'object' }, { name: fn.name, ready: true }) }));
  }
  add('/v2/health/live', 'get', { tags: ['protocol'], operationId: 'live', summary: 'Liveness', responses: answer('live', { type: 'object' }, { live: true }) });
  add('/v2/health/ready', 'get', { tags: ['protocol'], operationId: 'ready', summary: 'Readiness (503 while loading or draining)', responses: answer('ready', { type: 'object' }, { ready: true }) });
  add('/v2', 'get', { tags: ['protocol'], operationId: 'server_metadata', summary: 'Server metadata and extensions', responses: answer('the server', { type: 'object' }, { name: 'modelfn', version: VERSION, extensions: [...EXTENSIONS] }) });
  add('/metrics', 'get', {
    tags: ['operations'],
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    responses: { '200': { description: 'metrics in the Prometheus text format', content: { 'text/plain': { schema: { type: 'string' }, example: METRICS_EXAMPLE } } } },
  });
  add('/stats', 'get', {
    tags: ['operations'],
    operationId: 'stats',
    summary: 'The last minute: state, requests/s, latency, batch size (the live view)',
    // An idle minute's figures: the shape of the answer (the live view's numbers come from traffic).
    responses: answer('figures over the last minute, from the metrics', { type: 'object' }, summarize(fn.name, 'ready', emptyWindow(), fn.replicas, fn.replicas)),
  });
  add('/openapi.json', 'get', { tags: ['operations'], operationId: 'openapi', summary: 'This document', responses: answer('OpenAPI 3.1', { type: 'object' }, { openapi: '3.1.0', info: { title: fn.name, version: fn.version }, paths: { '...': {} } }) });

  return {
    openapi: '3.1.0',
    info: {
      title: fn.name,
      version: fn.version,
      description: fn.description ?? `The ${fn.name} function.`,
      'x-generator': `modelfn ${VERSION}`,
    },
    servers: [{ url: serverUrl }],
    tags: [
      { name: 'function', description: "the function's own routes" },
      { name: 'inference', description: "the model's inference routes" },
      { name: 'protocol', description: 'Open Inference Protocol metadata and health' },
      { name: 'operations', description: 'metrics and documents' },
    ],
    paths,
    components: {
      schemas: {
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
        Tensor: { type: 'object', required: ['name', 'datatype', 'shape'], properties: { name: { type: 'string' }, datatype: { type: 'string' }, shape: { type: 'array', items: { type: 'integer', minimum: -1 } } } },
        ModelMetadata: {
          type: 'object',
          required: ['name', 'versions', 'platform', 'inputs', 'outputs'],
          properties: {
            name: { type: 'string' },
            versions: { type: 'array', items: { type: 'string' } },
            platform: { type: 'string' },
            inputs: { type: 'array', items: { $ref: '#/components/schemas/Tensor' } },
            outputs: { type: 'array', items: { $ref: '#/components/schemas/Tensor' } },
          },
        },
        PredictRequest: { type: 'object', required: ['instances'], properties: { instances: { type: 'array' } } },
        PredictResponse: { type: 'object', required: ['predictions'], properties: { predictions: { type: 'array' } } },
      },
      responses: { Error: { description: 'an error: always JSON, with a message naming the problem', content: json({ $ref: '#/components/schemas/Error' }) } },
    },
    'x-modelfn': {
      name: fn.name,
      prefix: fn.prefix,
      inputs: metadata.inputs,
      // Each output with the class labels its values stand for, where the function names them.
      outputs: metadata.outputs.map((o) => {
        const labels = fn.labels[o.name] ?? fn.defaultLabels;
        return labels ? { ...o, labels } : o;
      }),
      ...(known.facts ? { model: known.facts } : {}),
      // Each version with its share of the traffic and of the copies; `version` is the one this document describes.
      ...(fn.versions.length > 1 ? {
        version: fn.version,
        versions: fn.versions.map(({ version }) => ({
          version,
          traffic: fn.traffic.find((t) => t.version === version)?.percent ?? 0,
          shadow: fn.shadow.find((t) => t.version === version)?.percent ?? 0,
        })),
      } : {}),
    },
  };
}
