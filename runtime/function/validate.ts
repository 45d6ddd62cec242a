/**
 * Checks a set of functions together, in the one place the build, `modelfn start` and
 * `modelfn serve` all use: names and prefixes that collide, prefixes the gateway keeps for itself,
 * and prefixes nested inside another's. Every problem is reported, not just the first.
 */
import type { ResolvedFunction } from './define.ts';
import { displayPath, findDeclarationFile } from './discover.ts';

/** Paths the gateway answers itself; no function prefix may take them. */
export const RESERVED_PREFIXES = ['/v2', '/metrics', '/docs', '/_modelfn'];
/** The deployment's own services (compose, swarm): no function may be named like them. */
export const RESERVED_NAMES = ['gateway', 'activator'];

type Checked = Pick<ResolvedFunction, 'name' | 'prefix' | 'dir' | 'declarationFile'>;

/** Where a problem is: the declaration file, else the folder. */
const where = (fn: Checked) => displayPath(fn.declarationFile ?? findDeclarationFile(fn.dir) ?? fn.dir);

/**
 * Every problem of the set, one line each (empty when there is none).
 *
 * @example functionSetProblems([iris, other]) // ["functions/other/function.ts: prefix '/iris' is also the prefix of functions/iris/function.ts"]
 */
export function functionSetProblems(functions: readonly Checked[]): string[] {
  const problems: string[] = [];
  const byName = new Map<string, Checked>();
  const byPrefix = new Map<string, Checked>();
  for (const fn of functions) {
    const sameName = byName.get(fn.name);
    if (sameName) problems.push(`${where(fn)}: name '${fn.name}' is also the name of ${where(sameName)}`);
    else byName.set(fn.name, fn);
    const samePrefix = byPrefix.get(fn.prefix);
    if (samePrefix) problems.push(`${where(fn)}: prefix '${fn.prefix}' is also the prefix of ${where(samePrefix)}`);
    else byPrefix.set(fn.prefix, fn);
    if (RESERVED_NAMES.includes(fn.name)) problems.push(`${where(fn)}: name '${fn.name}' is reserved for the deployment's own ${fn.name} service; rename the folder (or set \`name\`)`);
    const reserved = RESERVED_PREFIXES.find((r) => fn.prefix === r || fn.prefix.startsWith(`${r}/`));
    if (reserved) problems.push(`${where(fn)}: prefix '${fn.prefix}' is reserved for the gateway (${reserved})`);
  }
  for (const a of functions) {
    for (const b of functions) {
      if (a !== b && b.prefix.startsWith(`${a.prefix}/`)) problems.push(`${where(b)}: prefix '${b.prefix}' is inside '${a.prefix}' of ${where(a)}`);
    }
  }
  return problems;
}

/** A set of functions that must not be served: every problem, one per line after a count. */
export class FunctionSetError extends Error {
  override name = 'FunctionSetError';
  constructor(readonly problems: readonly string[]) {
    super(`${problems.length} problem${problems.length > 1 ? 's' : ''}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Throws FunctionSetError naming every problem of the set. */
export function assertValidFunctionSet(functions: readonly Checked[]): void {
  const problems = functionSetProblems(functions);
  if (problems.length) throw new FunctionSetError(problems);
}
