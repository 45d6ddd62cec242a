/**
 * The Open Inference Protocol (KServe V2) REST routes for one function's model.
 */
import type { Context, Hono } from 'hono';
import { HttpError, clip } from '../core/errors.ts';
import { errorResponse } from './errors.ts';
import type { Model } from '../engine/model.ts';
import type { FunctionHost } from '../function/host.ts';
import type { Feeds, Fetches } from '../tensor/types.ts';
import { EXTENSIONS, HEADER_LENGTH, decodeInferRequest, encodeInferResponse } from '../tensor/infer.ts';
import { jsonAnswer } from './response-compression.ts';

/** The protocol extensions this server implements. */
export { EXTENSIONS } from '../tensor/infer.ts';

export interface ProtocolOptions {
  maxElements: number;
  serverName: string;
  serverVersion: string;
}

/**
 * Reads a request body as bytes after checking its content type:
 * JSON, or octet-stream when it carries binary tensors.
 */
export async function readInferBody(c: Context): Promise<{ body: Uint8Array; headerLength?: string }> {
  const headerLength = c.req.header(HEADER_LENGTH);
  const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
  const json = type === '' || type === 'application/json';
  if (!json && type !== 'application/octet-stream') {
    throw new HttpError(415, `unsupported Content-Type '${type.slice(0, 60)}'; send application/json (curl: -H 'Content-Type: application/json'), or application/octet-stream with Inference-Header-Content-Length for binary tensors`);
  }
  if (type === 'application/octet-stream' && headerLength === undefined) {
    throw new HttpError(400, 'an application/octet-stream inference request needs the Inference-Header-Content-Length header');
  }
  return { body: new Uint8Array(await c.req.arrayBuffer()), headerLength };
}

/** Reads a JSON request body as bytes, refusing other content types with 415. */
export async function readJsonBody(c: Context): Promise<Uint8Array> {
  const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type !== '' && type !== 'application/json') {
    throw new HttpError(415, `unsupported Content-Type '${type.slice(0, 60)}'; send application/json (curl: -H 'Content-Type: application/json')`);
  }
  return new Uint8Array(await c.req.arrayBuffer());
}

/**
 * Server-level routes: health and server metadata.
 *
 * @example serverRoutes(app, () => hosts.every((h) => h.isReady), options)
 */
export function serverRoutes(app: Hono, isReady: () => string | undefined, options: ProtocolOptions): void {
  const metadata = { name: options.serverName, version: options.serverVersion, extensions: [...EXTENSIONS] };
  app.get('/v2', (c) => c.json(metadata));
  app.get('/v2/health/live', (c) => c.json({ live: true }));
  app.get('/v2/health/ready', (c) => {
    const reason = isReady();
    return reason === undefined ? c.json({ ready: true }) : c.json({ ready: false, error: reason }, 503);
  });
}

/** Model routes: metadata, readiness and inference, with and without `/versions/{v}`. */
export function modelRoutes(app: Hono, host: FunctionHost, options: ProtocolOptions): void {
  const fn = host.fn;
  const versions = fn.versions.map((v) => v.version);
  const checkVersion = (c: Context): void => {
    const version = c.req.param('version');
    if (version !== undefined && version !== fn.version) {
      throw new HttpError(404, `model '${fn.name}' has no version '${clip(version)}' (versions: ${versions.join(', ')})`);
    }
  };
  const tensors = (specs: typeof host.model.inputs) => specs.map((s) => ({ name: s.name, datatype: s.datatype, shape: s.shape }));

  for (const base of [`/v2/models/${fn.name}`, `/v2/models/${fn.name}/versions/:version`]) {
    app.get(base, (c) => {
      checkVersion(c);
      const model = host.model;
      return c.json({
        name: fn.name,
        versions,
        platform: 'onnxruntime_onnx',
        inputs: tensors(model.inputs),
        outputs: tensors(model.outputs),
      });
    });
    app.get(`${base}/ready`, (c) => {
      checkVersion(c);
      return host.isReady
        ? c.json({ name: fn.name, ready: true })
        : c.json({ name: fn.name, ready: false, error: host.notReadyReason() }, 503);
    });
    app.post(`${base}/infer`, async (c) => {
      checkVersion(c);
      const model = host.model;
      model.checkAdmission();
      const { body, headerLength } = await readInferBody(c);
      const request = decodeInferRequest(host.signature, body, headerLength, options.maxElements);
      const fetches = await runModel(c, model, request.feeds, request.outputs.map((o) => o.name));
      const encoded = encodeInferResponse(host.signature, request, fetches);
      if (encoded.headerLength === undefined) return jsonAnswer(c, encoded.body as string);
      return c.body(encoded.body as Uint8Array<ArrayBuffer>, 200, {
        'Content-Type': 'application/octet-stream',
        'Inference-Header-Content-Length': String(encoded.headerLength),
      });
    });
  }
  app.all('/v2/models/:model{.+}', (c) => {
    const name = c.req.param('model').split('/')[0];
    if (name === fn.name) return errorResponse(c, 404, `no route for ${c.req.method} ${clip(c.req.path)}`);
    return errorResponse(c, 404, `unknown model '${clip(name)}'; this server has: ${fn.name}`);
  });
}

/**
 * Runs the model on tensors the runtime decoded from a request (they move to the inference
 * thread, nothing reads them again), under the request's deadline and signal. Failures are the
 * engine's own kinds (engine/model.ts), answered by the error table (errors.ts).
 */
export function runModel(c: Context, model: Model, feeds: Feeds, outputs?: readonly string[]): Promise<Fetches> {
  return model.run(feeds, outputs, { transfer: true, signal: c.get('life') });
}
