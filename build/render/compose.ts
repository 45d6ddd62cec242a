/**
 * docker-compose.yml, generated from the function declarations: one hardened service per
 * function, and the nginx gateway that starts once they are healthy.
 */
import { stringify } from 'yaml';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import {
  FUNCTION_PORT, GATEWAY_PORT, GATEWAY_RESOURCES, GENERATED_HEADER, HEALTHCHECK, PUBLISHED_HOST, PUBLISHED_PORT,
  REPLICA_RESOURCES, TAG_VARIABLE, TMP_MIB, functionEnvironment, functionImage, gatewayImage, runtimeUser, secretFile, stopGraceSeconds,
} from '../policy.ts';

export interface ComposeOptions {
  /** Image tag of the functions and the gateway (default: MODELFN_IMAGE_TAG when the stack starts, else latest). */
  tag?: string;
}

/** The healthcheck of a function service, in the format compose and swarm share. */
export const composeHealthcheck = () => ({
  test: [...HEALTHCHECK.command],
  interval: `${HEALTHCHECK.intervalSeconds}s`,
  timeout: `${HEALTHCHECK.timeoutSeconds}s`,
  retries: HEALTHCHECK.retries,
  start_period: `${HEALTHCHECK.startPeriodSeconds}s`,
});

/** Secrets the functions' API keys come from, read from `secrets/<name>` beside the file. */
export function composeSecrets(functions: readonly ResolvedFunction[]) {
  const secrets = Object.fromEntries(functions.filter((fn) => fn.auth).map((fn) => [fn.auth!.apiKeys, { file: secretFile(fn.auth!.apiKeys) }]));
  return Object.keys(secrets).length ? { secrets } : {};
}

/** What every function container is, in compose and swarm alike: its image, non-root, read-only, no capabilities, its limits. */
export const functionContainer = (fn: ResolvedFunction, tag: string) => ({
  image: functionImage(fn.name, tag),
  init: true,
  user: runtimeUser(),
  read_only: true,
  cap_drop: ['ALL'],
  environment: functionEnvironment(fn),
});

/** The compose document as an object (Compose Specification format). */
export function composeDocument(functions: readonly ResolvedFunction[], options: ComposeOptions = {}) {
  const services: Record<string, unknown> = {};
  for (const fn of functions) {
    services[fn.name] = {
      ...functionContainer(fn, options.tag ?? TAG_VARIABLE),
      tmpfs: [`/tmp:size=${TMP_MIB}m,mode=1777`],
      security_opt: ['no-new-privileges:true'],
      expose: [String(FUNCTION_PORT)],
      healthcheck: composeHealthcheck(),
      restart: 'unless-stopped',
      stop_grace_period: `${stopGraceSeconds(fn)}s`,
      deploy: {
        replicas: fn.replicas,
        resources: { limits: { cpus: String(REPLICA_RESOURCES.limits.cpus), memory: `${REPLICA_RESOURCES.limits.memoryMiB}M` } },
      },
      networks: ['functions'],
      // API keys reach the function as a secret file at /run/secrets/<name>, never baked into an image.
      ...(fn.auth ? { secrets: [fn.auth.apiKeys] } : {}),
    };
  }
  services.gateway = {
    image: gatewayImage(options.tag ?? TAG_VARIABLE),
    ports: [`${PUBLISHED_HOST}:${PUBLISHED_PORT}:${GATEWAY_PORT}`],
    read_only: true,
    tmpfs: [`/tmp:size=${TMP_MIB}m`],
    cap_drop: ['ALL'],
    cap_add: ['CHOWN', 'SETGID', 'SETUID'],
    security_opt: ['no-new-privileges:true'],
    restart: 'unless-stopped',
    depends_on: Object.fromEntries(functions.map((fn) => [fn.name, { condition: 'service_healthy' }])),
    deploy: { resources: { limits: { cpus: String(GATEWAY_RESOURCES.limits.cpus), memory: `${GATEWAY_RESOURCES.limits.memoryMiB}M` } } },
    networks: ['functions'],
  };
  return { services, networks: { functions: {} }, ...composeSecrets(functions) };
}

/**
 * The docker-compose.yml text.
 *
 * @example writeFileSync('docker-compose.yml', composeFile(functions));
 */
export function composeFile(functions: readonly ResolvedFunction[], options: ComposeOptions = {}): string {
  return `${GENERATED_HEADER}\n${stringify(composeDocument(functions, options), { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
