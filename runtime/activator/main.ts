/**
 * The activator's process: reads its settings, finds its compose project, serves the gateway
 * and checks every scaled function once a tick; stops on SIGTERM/SIGINT.
 */
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { addressesOf } from '../serve/control.ts';
import { createLogger } from '../core/log.ts';
import { Activator } from './activator.ts';
import { activatorApp } from './app.ts';
import { readActivatorConfig } from './config.ts';
import { dockerClient } from './docker.ts';
import { createActivatorMetrics } from './metrics.ts';
import { PROJECT_LABEL, ProjectScope } from './scope.ts';
import { STACK_LABEL, StackScope } from './stack-scope.ts';

/**
 * Runs the activator until a signal; exits 1 with one line on stderr when it cannot start.
 *
 * @example await runActivator();
 */
export async function runActivator(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const logger = createLogger('info');
  try {
    const config = readActivatorConfig(env);
    const docker = dockerClient(config.socket);
    // Its own container (the host name is the container's id) carries the project's (stack's) label.
    const swarm = config.orchestrator === 'swarm';
    const project = config.project ?? (await docker.inspect(hostname())).Config.Labels[swarm ? STACK_LABEL : PROJECT_LABEL];
    const names = new Set(config.functions.map((f) => f.name));
    const scope = swarm ? new StackScope(docker, project, names) : new ProjectScope(docker, project, names);
    const metrics = createActivatorMetrics();
    const activator = new Activator({ ...config, scope, metrics, logger, scaleUpTicks: 3, scaleDownTicks: 5 });
    const app = activatorApp(activator, { metrics, logger, allow: config.from ? addressesOf(config.from) : undefined });
    const server = await new Promise<Server>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s as Server)) as Server;
      s.once('error', reject);
    });
    activator.start();
    logger.log('info', 'activator listening', { [swarm ? 'stack' : 'project']: project, port: config.port, functions: config.functions.map((f) => `${f.name} (min ${f.min}, max ${f.max}, idle ${f.idleSeconds} s, ${f.wake})`) });
    const stop = () => {
      activator.stop();
      server.close(() => process.exit(0));
      setTimeout(() => process.exit(0), 5000).unref();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  } catch (err) {
    process.stderr.write(`modelfn activator: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
