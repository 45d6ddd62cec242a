/**
 * The activator: the runtime's service for functions that scale to zero on Docker Compose. It
 * is one container, not published, that answers the gateway only and talks to the Docker Engine
 * API over the engine's socket, acting only on this compose project's scaled services.
 *
 * - `activator.ts`: the decisions (wake, hold, sleep, scale out and in);
 * - `app.ts`: the HTTP side the gateway hands requests to;
 * - `scope.ts`: the only door to the engine, by compose labels;
 * - `docker.ts`: the Engine API calls; `config.ts`, `metrics.ts`, `main.ts` (the process).
 */
export { Activator, UnavailableError, type ScaledSpec } from './activator.ts';
export { activatorApp } from './app.ts';
export { readActivatorConfig, ACTIVATOR_SETTINGS } from './config.ts';
export { dockerClient, type DockerClient } from './docker.ts';
export { createActivatorMetrics } from './metrics.ts';
export { ProjectScope, OutOfScopeError } from './scope.ts';
export { runActivator } from './main.ts';
