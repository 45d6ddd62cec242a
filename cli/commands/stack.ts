/**
 * `modelfn up`, `down` and `logs` (npm run up / down / logs): the compose stack.
 */
import { parse, type Command } from '../args.ts';
import { engineError, log } from '../engine.ts';

type StackCommand = 'up' | 'down' | 'logs';

function stackCommand(name: StackCommand, summary: string, help: string): Command {
  return {
    name,
    summary,
    help,
    async run(args) {
      const parsed = parse(this, args, name === 'logs' ? { follow: { type: 'boolean', short: 'f' } } : name === 'up' ? { arch: { type: 'string' } } : {}, [0, 0]);
      if (!parsed) return 0;
      const { runStack } = await import('../../builder/docker/stack.ts');
      try {
        return await runStack(name, { root: process.cwd(), log, follow: Boolean(parsed.values.follow), arch: parsed.values.arch as string | undefined });
      } catch (err) {
        throw engineError(err);
      }
    },
  };
}

export const up = stackCommand('up', 'build everything and start the compose stack (npm run up)', `usage: modelfn up [--arch A]

The same as npm run up: bundles, images, and the compose stack, then waits until every function
answers through the gateway. Needs Docker.
  --arch A   the images' architecture: x64 or arm64 (default: this machine's; another one is
             built, and its build steps run, under emulation: qemu-user-static with binfmt_misc)

environment:
  MODELFN_HOST, MODELFN_PORT  where the gateway is published (default 127.0.0.1, 8080)
  MODELFN_PROJECT             the compose project's name (default modelfn); down and logs take the same
  MODELFN_IMAGE_TAG           the tag of the images built and run (default latest)
`);

export const down = stackCommand('down', 'stop the compose stack, leaving nothing behind (npm run down)', `usage: modelfn down

The same as npm run down: removes the stack's containers, networks and volumes.

environment:
  MODELFN_PROJECT             the compose project to take down (default modelfn), as given to up
  MODELFN_IMAGE_TAG           not needed: the project's containers go whatever tag up ran
`);

export const logs = stackCommand('logs', "the compose stack's logs (npm run logs)", `usage: modelfn logs [--follow]

The last 200 lines of every service's logs; --follow (-f) keeps printing new ones.

environment:
  MODELFN_PROJECT             the compose project (default modelfn), as given to up
`);
