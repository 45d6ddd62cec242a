/**
 * Live traffic changes (`modelfn traffic`): the arguments that name a new split, and the store
 * that keeps a deployment's changed splits so that `npm run up` again keeps them.
 *
 * The store is one small JSON per compose project, `dist/traffic/<project>.json`, and per Swarm
 * stack, `dist/traffic/swarm/<stack>.json` (beside the build's other output, never committed): for each function, the split in force and the split
 * its declaration had when the change was made. The build reads it for the gateway it builds,
 * and drops a function's entry as soon as its declared split is no longer the one recorded: a
 * changed declaration wins over a live change made before it.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ResolvedFunction } from '../runtime/function/define.ts';
import type { Split } from '../runtime/function/traffic.ts';
import { resolveSplit } from '../runtime/function/version.ts';

/** One function's live change: the split in force, and the declared split it replaced. */
export interface TrafficOverride {
  declared: Record<string, number>;
  traffic: Record<string, number>;
}

/** A project's live changes, by function name. */
export type TrafficOverrides = Record<string, TrafficOverride>;

/** A split as the declaration writes it: `{ '1': 80, '2': 20 }`. */
export const splitRecord = (split: Split): Record<string, number> => Object.fromEntries(split.map((s) => [s.version, s.percent]));

const sameSplit = (a: Record<string, number>, b: Record<string, number>) => {
  const keys = (r: Record<string, number>) => Object.keys(r).filter((k) => r[k] !== 0).sort();
  return keys(a).join() === keys(b).join() && keys(a).every((k) => a[k] === b[k]);
};

/**
 * The split named by `modelfn traffic <name> <N>=<percent> ...`, validated as a declaration's
 * `traffic` is (existing versions, percentages summing to 100, at most two decimals), in version
 * order; versions not named get nothing. Returns the split, or the one-line reason it is refused.
 *
 * @example parseTrafficArgs(flowers, ['2=100', '1=0']) // [{ version: '1', percent: 0 }, { version: '2', percent: 100 }]
 */
export function parseTrafficArgs(fn: Pick<ResolvedFunction, 'name' | 'versions' | 'shadow'>, args: readonly string[]): Split | string {
  const versions = fn.versions.map((v) => v.version);
  const declared: Record<string, number> = {};
  for (const arg of args) {
    const match = /^([^=]+)=(.*)$/.exec(arg);
    if (!match) return `'${arg}': expected <version>=<percent>, e.g. 2=100`;
    const [, version, value] = match;
    const percent = Number(value.replace(/%$/, ''));
    if (value.trim() === '' || !Number.isFinite(percent) || percent < 0 || percent > 100) return `'${arg}': the percent must be a number from 0 to 100`;
    if (version in declared) return `'${arg}': version ${version} is named twice`;
    declared[version] = percent;
  }
  const split = resolveSplit('traffic', declared, versions);
  if (typeof split === 'string') return `${fn.name}: ${split}`;
  const serving = fn.shadow.find((s) => s.percent > 0 && split.some((t) => t.version === s.version && t.percent > 0));
  if (serving) return `${fn.name}: version ${serving.version} is the shadow; a shadow only gets copies of requests`;
  return split;
}

/** What runs a deployment: a compose project (`npm run up`) or a Swarm stack (`modelfn deploy`). */
export type Orchestrator = 'compose' | 'swarm';

/** Where a compose project's (or a Swarm stack's) live changes are kept. */
export const overridesFile = (root: string, project: string, orchestrator: Orchestrator = 'compose') =>
  orchestrator === 'swarm' ? join(root, 'dist', 'traffic', 'swarm', `${project}.json`) : join(root, 'dist', 'traffic', `${project}.json`);

/** A project's (stack's) live changes; none when the file is absent. */
export function loadOverrides(root: string, project: string, orchestrator: Orchestrator = 'compose'): TrafficOverrides {
  const file = overridesFile(root, project, orchestrator);
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TrafficOverrides;
  } catch (err) {
    throw new Error(`${file}: not the JSON modelfn traffic writes (${(err as Error).message}); remove it to go back to the declared splits`);
  }
}

/** Writes a project's live changes; removes the file when there are none. */
export function saveOverrides(root: string, project: string, overrides: TrafficOverrides, orchestrator: Orchestrator = 'compose'): void {
  const file = overridesFile(root, project, orchestrator);
  if (!Object.keys(overrides).length) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(overrides, null, 2)}\n`);
}

/**
 * The functions with a project's live changes applied, and the changes that still hold: an
 * entry whose function is gone, whose declared split changed since, or which names a version
 * that is gone, is dropped (the declaration is in force again).
 *
 * @example const { functions: live, kept } = applyOverrides(functions, loadOverrides(root, project));
 */
export function applyOverrides<F extends ResolvedFunction>(functions: readonly F[], overrides: TrafficOverrides): { functions: F[]; kept: TrafficOverrides; dropped: string[] } {
  const kept: TrafficOverrides = {};
  const dropped: string[] = [];
  const out = functions.map((fn) => {
    const override = overrides[fn.name];
    if (!override) return fn;
    const split = sameSplit(override.declared, splitRecord(fn.traffic)) ? resolveSplit('traffic', override.traffic, fn.versions.map((v) => v.version)) : undefined;
    if (!split || typeof split === 'string') {
      dropped.push(fn.name);
      return fn;
    }
    kept[fn.name] = override;
    return { ...fn, traffic: split };
  });
  for (const name of Object.keys(overrides)) if (!functions.some((fn) => fn.name === name)) dropped.push(name);
  return { functions: out, kept, dropped };
}
