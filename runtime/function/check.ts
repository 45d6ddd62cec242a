/**
 * The shape of a declaration, checked with zod: what the build checks for every function, and
 * what a function started from source or a bundle whose declaration changed since its build
 * checks at start (runtime/function/discover.ts). Kept apart from define.ts so that a bundle's
 * start loads zod only when it must.
 */
import * as z from 'zod/mini';
import '../core/zod.ts';
import { parseByteSize, type RuntimeConfig } from '../core/config.ts';
import { completeDeclaration, DeclarationError, MAX_REPLICAS, NAME_PATTERN, PREFIX_PATTERN, type FunctionDeclaration, type ResolvedFunction } from './define.ts';
import type { VersionFolder } from './version.ts';

const positiveInt = z.int().check(z.positive());
const positiveIntUpTo = (max: number) => z.int().check(z.positive(), z.lte(max));

const limitsSchema = z.strictObject({
  bodySize: z.optional(z.union([positiveInt, z.string()]).check(z.refine((v) => parseByteSize(v) !== undefined, 'must be bytes or a size such as 512kb or 10mb'))),
  timeoutMs: z.optional(positiveInt),
  maxQueue: z.optional(positiveIntUpTo(1_000_000)),
  maxQueueMs: z.optional(positiveIntUpTo(3_600_000)),
});
const batchingSchema = z.strictObject({
  enabled: z.optional(z.boolean()),
  maxBatchSize: z.optional(positiveInt),
  maxDelayMs: z.optional(z.number().check(z.gte(0))),
  maxQueue: z.optional(positiveIntUpTo(1_000_000)),
});
const labelsSchema = z.union([z.array(z.string()), z.record(z.string(), z.array(z.string()))]);
const exampleSchema = z.strictObject({
  inputs: z.array(z.strictObject({
    name: z.string(),
    datatype: z.string(),
    shape: z.array(z.int().check(z.gte(0))),
    data: z.array(z.unknown()),
  })).check(z.minLength(1)),
});
const scaleSchema = z.strictObject({
  min: z.optional(z.int().check(z.gte(0), z.lte(MAX_REPLICAS))),
  max: z.optional(positiveIntUpTo(MAX_REPLICAS)),
  idleSeconds: z.optional(z.int().check(z.gte(1), z.lte(86_400))),
  wake: z.optional(z.enum(['start', 'unpause'])),
  concurrency: z.optional(positiveIntUpTo(100_000)),
});
const splitSchema = z.record(z.string(), z.number().check(z.gte(0, 'must be a percentage from 0 to 100'), z.lte(100, 'must be a percentage from 0 to 100')));
const matching = (pattern: RegExp, message: string) => z.string().check(z.regex(pattern, message));

const declarationSchema = z.strictObject({
  name: z.optional(matching(NAME_PATTERN, 'must be lowercase letters, digits and dashes, starting with a letter')),
  prefix: z.optional(matching(PREFIX_PATTERN, "must look like '/name' (no trailing slash, no spaces)")),
  model: z.optional(z.string().check(z.minLength(1), z.refine((p) => !p.startsWith('/') && !p.split(/[\\/]/).includes('..'), 'must be a path inside the function folder'))),
  version: z.optional(matching(/^[A-Za-z0-9._-]+$/, 'must be letters, digits, dots, dashes')),
  description: z.optional(z.string()),
  traffic: z.optional(splitSchema),
  shadow: z.optional(splitSchema),
  versions: z.optional(z.record(z.string(), z.strictObject({
    description: z.optional(z.string()),
    example: z.optional(exampleSchema),
    labels: z.optional(labelsSchema),
    batching: z.optional(batchingSchema),
    limits: z.optional(limitsSchema),
    replicas: z.optional(positiveIntUpTo(MAX_REPLICAS)),
    scale: z.optional(scaleSchema),
  }))),
  limits: z.optional(limitsSchema),
  batching: z.optional(batchingSchema),
  replicas: z.optional(positiveIntUpTo(MAX_REPLICAS)),
  scale: z.optional(scaleSchema),
  auth: z.optional(z.strictObject({
    apiKeys: matching(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, 'must name a secret (letters, digits, dots, dashes)'),
  })),
  rateLimit: z.optional(z.strictObject({
    requestsPerSecond: z.number().check(z.positive(), z.lte(1_000_000)),
    burst: z.optional(z.int().check(z.gte(0))),
  })),
  labels: z.optional(labelsSchema),
  example: z.optional(exampleSchema),
  routes: z.optional(z.function()),
  routeDocs: z.optional(z.record(
    z.string(),
    z.strictObject({
      summary: z.optional(z.string()),
      description: z.optional(z.string()),
      contentType: z.optional(matching(/^[\w.+-]+\/[\w.+-]+$/, 'must be a media type such as audio/wav')),
      requestExample: z.optional(z.unknown()),
      exampleFile: z.optional(matching(/^(?!.*\.\.)[\w-][\w./-]*$/, "must be a path inside the function's folder, such as 'test/speech.wav'")),
      responseExample: z.optional(z.unknown()),
      query: z.optional(z.record(z.string(), z.string())),
    }),
  ).check(z.superRefine((docs, ctx) => {
    for (const key of Object.keys(docs)) {
      if (!/^(GET|POST|PUT|PATCH|DELETE) \/\S*$/.test(key)) ctx.addIssue({ code: 'custom', path: [key], message: "must be a method and a path, such as 'POST /species'" });
    }
  }))),
});

/** Every field a declaration may have (the README's table lists each; a test checks). */
export const DECLARATION_FIELDS = Object.keys(declarationSchema.shape);

/**
 * Checks a declaration's shape. Throws DeclarationError naming the first problem and `file`.
 *
 * @example checkDeclaration({ replicas: 0 }, 'functions/iris/function.ts') // throws "...: replicas: too small: ..."
 */
export function checkDeclaration(declaration: unknown, file: string): FunctionDeclaration | undefined {
  const parsed = declarationSchema.safeParse(declaration ?? {});
  // The declaration itself, not zod's copy (which wraps `routes`): the same object a bundle uses
  // when it skips this check.
  if (parsed.success) return declaration as FunctionDeclaration | undefined;
  throw new DeclarationError(file, problemOf(parsed.error.issues[0], 'declaration'));
}

const modelDocsSchema = z.strictObject({ description: z.optional(z.string()), example: z.optional(exampleSchema) });

/**
 * Checks what a version folder's model documents itself (its description and `modelfn.example`),
 * as a declaration's `example` is checked. Throws DeclarationError naming the model file.
 *
 * @example checkModelDocs({ example: { inputs: [] } }, 'functions/flowers/2/model.onnx') // throws "...: metadata_props 'modelfn.example': inputs: too small: ..."
 */
export function checkModelDocs(docs: { description?: string; example?: unknown }, file: string): void {
  const parsed = modelDocsSchema.safeParse(docs);
  if (parsed.success) return;
  const issue = parsed.error.issues[0];
  const [field, ...rest] = issue.path;
  const where = field === 'example' ? "metadata_props 'modelfn.example'" : 'doc_string';
  throw new DeclarationError(file, `${where}: ${problemOf({ ...issue, path: rest }, 'example')}`);
}

/** One zod issue as `path: message`, worded like the runtime's own messages. */
function problemOf(issue: { path: PropertyKey[]; message: string }, whole: string): string {
  const path = issue.path.map(String).join('.') || whole;
  const message = issue.message.replace(/^Invalid input: /, '');
  return `${path}: ${message.charAt(0).toLowerCase()}${message.slice(1)}`;
}

/**
 * Checks a declaration and fills in its defaults (completeDeclaration), for a declaration given
 * as an object (the builder's and renderers' tests); function folders go through
 * resolveFunction (discover.ts). Throws DeclarationError naming the first problem.
 *
 * @example resolveDeclaration({ replicas: 2 }, { dir: '/srv/iris', folderName: 'iris' }, readConfig()).replicas // 2
 */
export function resolveDeclaration(
  declaration: unknown,
  where: { dir: string; folderName: string; declarationFile?: string; versions?: readonly VersionFolder[] },
  config: Pick<RuntimeConfig, 'bodyLimit' | 'timeoutMs'>,
): ResolvedFunction {
  return completeDeclaration(checkDeclaration(declaration, where.declarationFile ?? where.dir), where, config);
}
