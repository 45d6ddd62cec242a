/**
 * `modelfn invoke`: calls a function through a running gateway (`npm start`, or the compose
 * stack) and prints the answer.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { CliError, UsageError, parse, type Command } from '../args.ts';
import { formatJson } from '../format.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** Where invoke sends: --url, else MODELFN_URL, else the port npm start reads (PORT, default 8080) on this machine. */
export function gatewayUrl(url: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return (url ?? (env.MODELFN_URL || (env.PORT ? `http://127.0.0.1:${env.PORT}` : DEFAULT_URL))).replace(/\/+$/, '');
}

interface IndexEntry { name: string; prefix: string }
interface Operation { requestBody?: { content?: Record<string, { example?: unknown }> } }
interface OpenApi { paths: Record<string, Record<string, Operation>> }

type Input = { kind: 'json'; value: unknown } | { kind: 'file'; bytes: Uint8Array; type?: string };

const FILE_TYPES: Record<string, string> = { '.wav': 'audio/wav', '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg' };

async function request(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const origin = new URL(url).origin;
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    throw new CliError(`nothing answers at ${origin}${cause ? ` (${cause})` : ''}: start modelfn with npm start, or point --url (or MODELFN_URL, or PORT) at the port it serves on`);
  }
}

async function getJson<T>(url: string): Promise<T> {
  const res = await request(url, { headers: { Accept: 'application/json' } });
  if (!res.ok) throw new CliError(`GET ${url}: ${res.status} ${await errorText(res)}`);
  return (await res.json()) as T;
}

async function errorText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    return (JSON.parse(text) as { error?: string }).error ?? text;
  } catch {
    return text.slice(0, 300);
  }
}

function readInput(arg: string | undefined): Input | undefined {
  if (arg === undefined) return undefined;
  if (!arg.startsWith('@')) {
    try {
      return { kind: 'json', value: JSON.parse(arg) };
    } catch (err) {
      throw new UsageError(`the input is not JSON (${(err as Error).message}); pass JSON, or @FILE`);
    }
  }
  const path = arg.slice(1);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path === '-' ? 0 : path);
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const ext = extname(path).toLowerCase();
  if (ext === '.json' || path === '-') {
    try {
      return { kind: 'json', value: JSON.parse(bytes.toString('utf8')) };
    } catch (err) {
      throw new UsageError(`${path} is not JSON (${(err as Error).message})`);
    }
  }
  return { kind: 'file', bytes, type: FILE_TYPES[ext] };
}

/** The route a file goes to: the first one the function documents as taking something other than JSON. */
function fileRoute(doc: OpenApi): { path: string; type: string } | undefined {
  for (const [path, methods] of Object.entries(doc.paths)) {
    const content = methods.post?.requestBody?.content;
    if (content && !content['application/json']) return { path, type: Object.keys(content)[0] };
  }
  return undefined;
}

export const invoke: Command = {
  name: 'invoke',
  summary: 'call a function through a running gateway and print the answer',
  help: `usage: modelfn invoke <name> [JSON | @FILE | @-] [--path ROUTE] [--url URL] [--raw]

Calls function <name> at a running gateway (npm start, or npm run up) and prints the answer.

  JSON with "instances"   goes to /<prefix>/predict
  JSON with "inputs"      goes to /v2/models/<name>/infer
  @file.json, @-          JSON from a file, or from standard input
  @FILE (not .json)       the file's bytes go to the route the function documents for files
                          (vad: POST /segments, audio/wav)
  nothing                 the function's example inference request (the one its docs show)

  --path ROUTE   send to /<prefix>ROUTE instead, e.g. --path /species or --path '/segments?threshold=0.6'
  --url URL      the gateway (default: MODELFN_URL, else http://127.0.0.1:PORT, PORT being the
                 port npm start reads, else ${DEFAULT_URL})
  --raw          print the answer as it arrived

The answer goes to stdout; the request line and errors go to stderr. Exits 1 when the function
answers an error (4xx or 5xx) or nothing answers.

example: modelfn invoke iris '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
`,
  async run(args) {
    const parsed = parse(this, args, { path: { type: 'string' }, url: { type: 'string' }, raw: { type: 'boolean' } }, [1, 2]);
    if (!parsed) return 0;
    const [name, arg] = parsed.positionals;
    const route = parsed.values.path as string | undefined;
    if (route !== undefined && !route.startsWith('/')) throw new UsageError(`--path must start with '/', e.g. --path /species`);
    const base = gatewayUrl(parsed.values.url as string | undefined);
    try {
      new URL(base);
    } catch {
      throw new UsageError(`--url '${base}' is not a URL, e.g. ${DEFAULT_URL}`);
    }
    const input = readInput(arg);

    const index = await getJson<{ functions?: IndexEntry[] }>(`${base}/`);
    const fn = index.functions?.find((f) => f.name === name);
    if (!fn) throw new CliError(`no function '${name}' at ${base} (it has: ${(index.functions ?? []).map((f) => f.name).join(', ') || 'none'})`);

    let path: string;
    let body: BodyInit;
    let type: string;
    if (!input || input.kind === 'file') {
      const doc = await getJson<OpenApi>(`${base}${fn.prefix}/openapi.json`);
      if (!input) {
        path = `/v2/models/${fn.name}/infer`;
        body = JSON.stringify(doc.paths[path]?.post?.requestBody?.content?.['application/json']?.example ?? {});
        type = 'application/json';
      } else {
        const target = route ? { path: route, type: input.type ?? 'application/octet-stream' } : fileRoute(doc);
        if (!target) throw new CliError(`function '${name}' documents no route taking a file; pass --path ROUTE`);
        path = `${fn.prefix}${target.path}`;
        body = input.bytes as Uint8Array<ArrayBuffer>;
        type = target.type;
      }
    } else {
      const value = input.value as Record<string, unknown> | null;
      if (route) path = `${fn.prefix}${route}`;
      else if (value && typeof value === 'object' && 'instances' in value) path = `${fn.prefix}/predict`;
      else if (value && typeof value === 'object' && 'inputs' in value) path = `/v2/models/${fn.name}/infer`;
      else throw new UsageError('JSON input needs "instances" (for /predict) or "inputs" (for /v2/models/<name>/infer); for another route pass --path');
      body = JSON.stringify(input.value);
      type = 'application/json';
    }

    const started = performance.now();
    const res = await request(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': type, Accept: 'application/json' }, body });
    const ms = Math.round(performance.now() - started);
    process.stderr.write(`POST ${base}${path} -> ${res.status} ${res.statusText} (${ms} ms)\n`);
    if (!res.ok) throw new CliError(`${res.status} ${res.statusText}: ${await errorText(res)}`);
    const text = await res.text();
    if (parsed.values.raw || !(res.headers.get('content-type') ?? '').includes('json')) {
      process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    } else {
      process.stdout.write(`${formatJson(JSON.parse(text), Math.max(process.stdout.columns ?? 100, 60))}\n`);
    }
    return 0;
  },
};
