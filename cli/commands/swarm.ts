/**
 * `npm run deploy:swarm` / `npm run undeploy:swarm`: the generated stack on Docker Swarm.
 *
 *   up    bundles and images (npm run build -- --images), `docker stack deploy`, then waits
 *         until every service runs its replicas and every function answers through the gateway
 *   down  `docker stack rm`, then waits until no service, container, network or config is left
 *
 * MODELFN_STACK names the stack (default modelfn); MODELFN_PORT is the gateway's port (8080).
 */
import { runBuild } from '../../build/build.ts';
import { discoverFunctions } from '../../build/functions.ts';
import { run } from '../../build/docker/images.ts';
import { deployStack, removeStack, stackName, swarmState, waitForStack } from '../../build/docker/swarm.ts';
import { readConfig } from '../../runtime/core/config.ts';

const command = process.argv[2];
const root = process.cwd();
const stack = { name: stackName(), root };
const log = (line: string) => process.stdout.write(`${line}\n`);

async function requireManager(): Promise<void> {
  const { state, manager } = await swarmState();
  if (state !== 'active' || !manager) {
    throw new Error(`this Docker engine is not a swarm manager (swarm: ${state}). Run \`docker swarm init\` first `
      + '(one machine: `docker swarm init --advertise-addr 127.0.0.1`), or point DOCKER_HOST at a manager');
  }
}

try {
  if (command === 'up') {
    await requireManager();
    const code = await runBuild({ functionsDir: `${root}/functions`, outDir: `${root}/dist`, root, images: true, check: false, log });
    if (code !== 0) process.exit(code);
    const { functions } = await discoverFunctions(`${root}/functions`, readConfig());
    log(`\ndeploying stack ${stack.name}...`);
    log((await deployStack(stack)).trimEnd());
    const url = await waitForStack(stack, functions.map((f) => f.name));
    log(await run('docker', ['stack', 'services', stack.name]));
    log(`modelfn is up on Docker Swarm at ${url}/ (published on every interface of the node: Swarm cannot bind one address)`);
  } else if (command === 'down') {
    await requireManager();
    await removeStack(stack);
    log(`stack ${stack.name} removed: services, containers, networks and configs`);
  } else {
    process.stderr.write('usage: tsx cli/commands/swarm.ts up|down\n');
    process.exit(2);
  }
} catch (err) {
  process.stderr.write(`modelfn swarm ${command}: ${(err as Error).message}\n`);
  process.exit(1);
}
