import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keysVariable, loadApiKeys } from './auth.ts';
import { DeclarationError } from '../function/define.ts';
import { ROOT, errorOf, openDeclared, postJson } from '../testing/index.ts';

const IRIS = resolve(ROOT, 'functions/iris');
const secrets = mkdtempSync(join(tmpdir(), 'modelfn-secrets-'));
afterAll(() => rmSync(secrets, { recursive: true, force: true }));
const KEY = 'k-0123456789abcdef-first';
const OTHER = 'k-0123456789abcdef-second';
const body = { instances: [[5.1, 3.5, 1.4, 0.2]] };

describe('API keys', () => {
  it('reads keys from a secret file, one per line', () => {
    writeFileSync(join(secrets, 'iris-keys'), `${KEY}\n\n${OTHER}\n`);
    expect(loadApiKeys('iris', 'iris-keys', { MODELFN_SECRETS_DIR: secrets })).toEqual([KEY, OTHER]);
  });

  it('prefers the function\'s environment variable, and refuses to start without keys', () => {
    expect(keysVariable('my-fn')).toBe('MODELFN_API_KEYS_MY_FN');
    expect(loadApiKeys('iris', 'iris-keys', { MODELFN_API_KEYS_IRIS: `${OTHER},${KEY}`, MODELFN_SECRETS_DIR: secrets })).toEqual([OTHER, KEY]);
    expect(() => loadApiKeys('iris', 'missing', { MODELFN_SECRETS_DIR: secrets })).toThrow(/no API keys found: set MODELFN_API_KEYS_IRIS or write them to .*missing/);
    expect(() => loadApiKeys('iris', 'x', { MODELFN_API_KEYS_IRIS: 'short' })).toThrow(/at least 16 characters/);
  });

  it('answers 401 JSON without a valid bearer key, and serves with one', async () => {
    process.env.MODELFN_API_KEYS_IRIS = `${KEY},${OTHER}`;
    try {
      const { app } = await openDeclared(IRIS, { auth: { apiKeys: 'iris-keys' } });
      const missing = await app.request('/predict', postJson(body));
      expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await errorOf(missing)).toEqual({ status: 401, error: 'this function needs an API key: send Authorization: Bearer <key>' });
      expect(await errorOf(await app.request('/predict', postJson(body, { Authorization: 'Bearer k-0123456789abcdef-wrong' })))).toEqual({ status: 401, error: 'invalid API key' });
      expect((await errorOf(await app.request('/predict', postJson(body, { Authorization: `Basic ${KEY}` })))).status).toBe(401);
      expect((await app.request('/predict', postJson(body, { Authorization: `Bearer ${KEY}` }))).status).toBe(200);
      expect((await app.request('/predict', postJson(body, { Authorization: `bearer ${OTHER}` }))).status).toBe(200);
      expect((await errorOf(await app.request('/metrics'))).status).toBe(401);
      expect((await errorOf(await app.request('/v2/models/iris'))).status).toBe(401);
      // Health probes stay open for the engine; the live view's figures need a key like the rest.
      for (const path of ['/v2/health/live', '/v2/health/ready', '/v2/models/iris/ready', '/v2/models/iris/versions/1/ready']) {
        expect((await app.request(path)).status, path).toBe(200);
      }
      expect((await errorOf(await app.request('/stats'))).status).toBe(401);
      // The two served predictions count as requests; refused ones, probes and observation do not.
      const stats = await app.request('/stats', { headers: { Authorization: `Bearer ${KEY}` } });
      expect(await stats.json()).toMatchObject({ name: 'iris', state: 'ready', window: { requests: 2, errors: 0 } });
    } finally {
      delete process.env.MODELFN_API_KEYS_IRIS;
    }
  });

  it('stops a function that asks for keys and has none', async () => {
    await expect(openDeclared(IRIS, { auth: { apiKeys: 'nowhere-to-be-found' } })).rejects.toThrow(DeclarationError);
  });
});
