/**
 * The files `modelfn new` writes: a declaration, a test that passes at once, and a short README.
 */
import type { ExampleRequest } from '../runtime/function/define.ts';
import type { TensorSpec } from '../runtime/tensor/types.ts';
import { exampleRequest } from '../runtime/pages/openapi.ts';
import { formatJson, tensorText } from './format.ts';

export interface ScaffoldInput {
  name: string;
  inputs: readonly TensorSpec[];
  outputs: readonly TensorSpec[];
  /** Import path of runtime/ from the function's folder, e.g. `../../runtime`. */
  runtime: string;
  /** Where the functions live, relative to the project, e.g. `functions`. */
  functionsDir: string;
  /** The example to declare, when there is a better one than zeros. */
  example?: ExampleRequest;
  /** What the example's first output must equal, when known (the starter model). */
  expected?: { name: string; data: number[] };
  /** Where the model came from, for the README. */
  modelSource: string;
}

/** Examples longer than this stay out of the declaration (the docs then use zeros). */
const MAX_EXAMPLE_ELEMENTS = 64;

function exampleOf(input: ScaffoldInput): ExampleRequest | undefined {
  const example = input.example ?? exampleRequest({}, input.inputs);
  return example.inputs.every((t) => t.data.length <= MAX_EXAMPLE_ELEMENTS) ? example : undefined;
}

const tensors = (list: readonly TensorSpec[]) => list.map(tensorText).join(', ');

/** A value as a TypeScript literal in the project's style: `{ name: 'x', shape: [1, 3] }`. */
function literal(v: unknown): string {
  if (typeof v === 'string') return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  if (Array.isArray(v)) return `[${v.map(literal).join(', ')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v).map(([k, x]) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : literal(k)}: ${literal(x)}`);
    return entries.length ? `{ ${entries.join(', ')} }` : '{}';
  }
  return JSON.stringify(v) ?? 'undefined';
}
const specs = (list: readonly TensorSpec[]) => list.map(({ name, datatype, shape }) => ({ name, datatype, shape }));

export function declarationFile(input: ScaffoldInput): string {
  const example = exampleOf(input);
  const exampleLine = example
    ? `  // The request the docs pages and tests start from: make it one that means something.\n  example: ${literal(example)},\n`
    : '  // example: { inputs: [...] },  (the docs pages use zeros of the right shapes until you declare one)\n';
  return `/**
 * ${input.name}: served at /${input.name}/ by the gateway (npm start), documented at /${input.name}/docs.
 * Model: model.onnx; inputs ${tensors(input.inputs)}; outputs ${tensors(input.outputs)} (-1: any size).
 * Every field is optional; the project README's table lists them all with their defaults.
 */
import { defineFunction } from '${input.runtime}/index.ts';

export default defineFunction({
  description: 'What ${input.name} does, in one sentence (shown in the docs pages).',
${exampleLine}  // limits: { bodySize: '10mb', timeoutMs: 30_000 },
  // routes(app, ctx) {
  //   app.post('/hello', async (c) => c.json({ inputs: ctx.model.inputs.map((i) => i.name) }));
  // },
});
`;
}

export function testFile(input: ScaffoldInput): string {
  const valueCheck = input.expected
    ? `\n    expect(outputs[0]).toMatchObject(${literal(input.expected)});`
    : '';
  return `/**
 * ${input.name}'s own tests. npm test also runs the protocol's conformance suite on every function
 * (runtime/testing/conformance.test.ts); test your own routes and the answers you expect here.
 */
import { describe, expect, it } from 'vitest';
import { exampleRequest, openFunctionDir, postJson } from 'modelfn/testing';

describe('${input.name}', () => {
  it('serves its model with these inputs and outputs', async () => {
    const { app } = await openFunctionDir(import.meta.dirname);
    const res = await app.request('/v2/models/${input.name}');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      name: '${input.name}',
      inputs: ${literal(specs(input.inputs))},
      outputs: ${literal(specs(input.outputs))},
    });
  });

  it('answers its example request', async () => {
    const { app, host } = await openFunctionDir(import.meta.dirname);
    const res = await app.request('/v2/models/${input.name}/infer', postJson(exampleRequest(host.fn, host.model.inputs)));
    expect(res.status).toBe(200);
    const { outputs } = (await res.json()) as { outputs: { name: string; data: unknown[] }[] };
    expect(outputs.map((o) => o.name)).toEqual(${literal(input.outputs.map((o) => o.name))});${valueCheck}
  });

  it('documents itself', async () => {
    const { app } = await openFunctionDir(import.meta.dirname);
    expect((await app.request('/openapi.json')).status).toBe(200);
    expect((await app.request('/docs')).headers.get('content-type')).toContain('text/html');
  });
});
`;
}

export function readmeFile(input: ScaffoldInput): string {
  const example = exampleOf(input);
  const single = input.inputs.length === 1 && input.inputs[0].shape.length >= 1;
  let curl = '';
  if (example && single) {
    const [t] = example.inputs;
    const size = t.shape.slice(1).reduce((a, b) => a * b, 1);
    const instances = Array.from({ length: t.shape[0] ?? 1 }, (_, i) => t.data.slice(i * size, (i + 1) * size));
    curl = `curl -s localhost:8080/${input.name}/predict -H 'Content-Type: application/json' \\\n  -d '${formatJson({ instances }, Infinity)}'\n`;
  } else if (example && JSON.stringify(example).length < 300) {
    curl = `curl -s localhost:8080/v2/models/${input.name}/infer -H 'Content-Type: application/json' \\\n  -d '${formatJson(example, Infinity)}'\n`;
  }
  return `# ${input.name}

Made with \`modelfn new\` from ${input.modelSource}. Say here what it does.

| | |
| --- | --- |
| model | \`model.onnx\`: inputs ${tensors(input.inputs)}; outputs ${tensors(input.outputs)} (-1: any size) |
| declaration | \`function.ts\`: description, example, limits, custom routes |
| test | \`npx vitest run ${input.functionsDir}/${input.name}\` |
| docs | http://localhost:8080/${input.name}/docs once \`npm start\` runs |

## Try it

\`\`\`sh
npm start    # every function on localhost:8080; then, from another shell:
npx modelfn invoke ${input.name}    # sends the example request and prints the answer
${curl}\`\`\`
`;
}
