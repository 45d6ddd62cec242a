/**
 * `modelfn deploy` and `modelfn undeploy` (npm run deploy:swarm / undeploy:swarm): the generated
 * stack on Docker Swarm. MODELFN_STACK names the stack (default modelfn); MODELFN_PORT is the
 * gateway's port (8080).
 */
import { parse, type Command } from '../args.ts';
import { engineError, log } from '../engine.ts';

export const deploy: Command = {
  name: 'deploy',
  summary: 'build everything and deploy the stack on Docker Swarm (npm run deploy:swarm)',
  help: `usage: modelfn deploy [--arch A]

The same as npm run deploy:swarm: bundles and images (modelfn build --images), docker stack deploy
of deploy/swarm/stack.yml, then waits until every service runs its replicas and every function
answers through the gateway. Needs a Docker engine that is a swarm manager. The gateway keeps
the splits changed on this stack by modelfn traffic (dist/traffic/swarm/<stack>.json) until the
function's declared traffic changes.
  --arch A   the images' architecture: x64 or arm64 (default: this machine's; another one is
             built, and its build steps run, under emulation: qemu-user-static with binfmt_misc)

environment:
  MODELFN_STACK               the stack's name (default modelfn); undeploy takes the same
  MODELFN_PORT                the gateway's published port (default 8080)
  MODELFN_IMAGE_TAG           the tag of the images built and run (default latest)
`,
  async run(args) {
    const parsed = parse(this, args, { arch: { type: 'string' } }, [0, 0]);
    if (!parsed) return 0;
    const { deploySwarm } = await import('../../builder/docker/swarm.ts');
    try {
      return await deploySwarm(process.cwd(), log, process.env, parsed.values.arch as string | undefined);
    } catch (err) {
      throw engineError(err);
    }
  },
};

export const undeploy: Command = {
  name: 'undeploy',
  summary: 'remove the Docker Swarm stack, leaving nothing behind (npm run undeploy:swarm)',
  help: `usage: modelfn undeploy

The same as npm run undeploy:swarm: docker stack rm, then waits until no service, container,
network or config of the stack is left.

environment:
  MODELFN_STACK               the stack to remove (default modelfn), as given to deploy
`,
  async run(args) {
    if (!parse(this, args, {}, [0, 0])) return 0;
    const { undeploySwarm } = await import('../../builder/docker/swarm.ts');
    try {
      return await undeploySwarm(process.cwd(), log);
    } catch (err) {
      throw engineError(err);
    }
  },
};
