/**
 * What the serving commands (serve, start, dev) share: the runtime settings table for their
 * --help, and --port/--host applied over the environment.
 */
import { SETTINGS } from '../runtime/core/config.ts';

/** The runtime's settings, as `--help` lists them (runtime/core/config.ts's table). */
export function settingsHelp(): string {
  return `Settings (environment variables):
${SETTINGS.map((s) => `  ${s.env.padEnd(28)} ${s.default.padEnd(10)} ${s.description}`).join('\n')}
`;
}

/** The environment with --port and --host applied (they win over PORT and MODELFN_HOST). */
export function listenEnv(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  if (typeof values.port === 'string') out.PORT = values.port;
  if (typeof values.host === 'string') out.MODELFN_HOST = values.host;
  return out;
}
