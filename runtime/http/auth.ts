/**
 * Optional API keys per function: `Authorization: Bearer <key>`, compared in constant time.
 *
 * Keys come from the environment (`MODELFN_API_KEYS_<NAME>`, comma or newline separated) or from
 * a secret file (`$MODELFN_SECRETS_DIR/<secret>`, /run/secrets by default, one key per line:
 * where Docker and Kubernetes mount secrets). A function that asks for keys and finds none
 * refuses to start: it never serves open by accident.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MiddlewareHandler } from 'hono';
import { errorResponse } from './errors.ts';
import { routeClassOf } from '../core/route-class.ts';

/** The environment variable holding a function's keys. */
export const keysVariable = (name: string) => `MODELFN_API_KEYS_${name.toUpperCase().replace(/-/g, '_')}`;

/** Reads a function's keys; throws an Error naming where keys were looked for when there are none. */
export function loadApiKeys(name: string, secret: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const variable = keysVariable(name);
  const file = join(env.MODELFN_SECRETS_DIR || '/run/secrets', secret);
  const text = env[variable] ?? (existsSync(file) ? readFileSync(file, 'utf8') : '');
  const keys = text.split(/[\n,]/).map((k) => k.trim()).filter(Boolean);
  if (!keys.length) throw new Error(`auth.apiKeys: no API keys found: set ${variable} or write them to ${file} (one per line)`);
  const short = keys.find((k) => k.length < 16);
  if (short !== undefined) throw new Error(`auth.apiKeys: every key needs at least 16 characters (one has ${short.length})`);
  return keys;
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Requires one of `keys` as a bearer token on every route but the health probes (route-class.ts):
 * the engine's and the gateway's checks carry no key. The live view's `/stats` needs one too.
 *
 * @example app.use(requireApiKey(['a-long-random-key-1234']))
 */
export const requireApiKey = (keys: readonly string[]): MiddlewareHandler => {
  // Comparing fixed-length digests keeps the comparison constant-time whatever the key lengths.
  const digests = keys.map(digest);
  return async function requireApiKey(c, next) {
    if (routeClassOf(c) === 'probe') return next();
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    let ok = false;
    if (match) {
      const given = digest(match[1]);
      for (const d of digests) ok = timingSafeEqual(given, d) || ok;
    }
    if (ok) return next();
    return errorResponse(c, 401, match ? 'invalid API key' : 'this function needs an API key: send Authorization: Bearer <key>', {
      'WWW-Authenticate': 'Bearer realm="modelfn"',
    });
  };
};
