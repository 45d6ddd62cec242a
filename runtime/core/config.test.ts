// The runtime's settings, built from an injected environment (never the process's own here).
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, SETTINGS, intraOpThreadsFor, parseByteSize, readConfig } from './config.ts';

describe('readConfig', () => {
  it('gives every setting its documented default on an empty environment', () => {
    const config = readConfig({});
    expect(config).toMatchObject({
      host: '127.0.0.1', port: 8080, bodyLimit: 10 * 1024 * 1024, timeoutMs: 30_000, shutdownTimeoutMs: 30_000,
      maxElements: 16_777_216, accessLog: true, logLevel: 'info', intraOpThreads: 0, interOpThreads: 0,
      ortSpinning: false, inferenceThread: 'auto', workers: 1,
    });
    // The table the README and --help print holds the same defaults.
    expect(Object.fromEntries(SETTINGS.map((s) => [s.env, s.default]))).toMatchObject({ PORT: '8080', MODELFN_BODY_LIMIT: '10mb', MODELFN_TIMEOUT_MS: '30000' });
  });

  it('reads each variable, empty values counting as unset', () => {
    const config = readConfig({ PORT: '9000', MODELFN_HOST: '0.0.0.0', MODELFN_BODY_LIMIT: '512kb', MODELFN_ACCESS_LOG: 'off', MODELFN_LOG_LEVEL: 'debug', MODELFN_TIMEOUT_MS: '' });
    expect(config).toMatchObject({ port: 9000, host: '0.0.0.0', bodyLimit: 512 * 1024, accessLog: false, logLevel: 'debug', timeoutMs: 30_000 });
    expect(readConfig({ MODELFN_WORKERS: 'auto' }).workers).toBe(availableParallelism());
    expect([readConfig({ MODELFN_INFERENCE_THREAD: 'true' }), readConfig({ MODELFN_INFERENCE_THREAD: 'off' }), readConfig({ MODELFN_INFERENCE_THREAD: 'AUTO' })].map((c) => c.inferenceThread)).toEqual([true, false, 'auto']);
  });

  it('refuses a bad value with a ConfigError naming the variable, the value and what it expects', () => {
    const cases: [Record<string, string>, string][] = [
      [{ PORT: '70000' }, 'PORT="70000": expected an integer from 0 to 65535'],
      [{ MODELFN_BODY_LIMIT: 'lots' }, 'MODELFN_BODY_LIMIT="lots": expected a size such as 1048576, 512kb or 10mb'],
      [{ MODELFN_ACCESS_LOG: 'maybe' }, 'MODELFN_ACCESS_LOG="maybe": expected true or false'],
      [{ MODELFN_INFERENCE_THREAD: 'sometimes' }, 'MODELFN_INFERENCE_THREAD="sometimes": expected true, false or auto'],
      [{ MODELFN_LOG_LEVEL: 'loud' }, 'MODELFN_LOG_LEVEL="loud": expected debug, info, warn or error'],
      [{ MODELFN_TIMEOUT_MS: '0' }, 'MODELFN_TIMEOUT_MS="0": expected an integer from 1 to 9007199254740991'],
    ];
    for (const [env, message] of cases) {
      expect(() => readConfig(env)).toThrow(ConfigError);
      expect(() => readConfig(env)).toThrow(message);
    }
  });
});

describe('parseByteSize', () => {
  it('reads bytes and binary units, and refuses anything else', () => {
    expect(parseByteSize('1048576')).toBe(1048576);
    expect(parseByteSize('10mb')).toBe(10 * 1024 ** 2);
    expect(parseByteSize(' 1.5 KB ')).toBe(1536);
    expect(parseByteSize(2048)).toBe(2048);
    for (const bad of ['', 'mb', '-1', '0', '10 parsecs', 1.5, 0]) expect(parseByteSize(bad)).toBeUndefined();
  });
});

describe('intraOpThreadsFor', () => {
  it('keeps the setting, else shares the cores out between workers (0 with one: onnxruntime decides)', () => {
    expect(intraOpThreadsFor({ intraOpThreads: 3, workers: 4 })).toBe(3);
    expect(intraOpThreadsFor({ intraOpThreads: 0, workers: 1 })).toBe(0);
    expect(intraOpThreadsFor({ intraOpThreads: 0, workers: 2 })).toBe(Math.max(1, Math.floor(availableParallelism() / 2)));
  });
});
