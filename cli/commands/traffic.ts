/**
 * `modelfn traffic`: the split of a function's versions on a running compose stack or Swarm
 * stack, shown or changed in seconds without failing a request (builder/docker/traffic.ts).
 */
import { parse, UsageError, type Command } from '../args.ts';
import { engineError, log } from '../engine.ts';

export const traffic: Command = {
  name: 'traffic',
  summary: "show or change the split of a function's versions on the running compose or Swarm stack",
  help: `usage: modelfn traffic <name> [<version>=<percent> ...] [--window S] [--compose | --swarm]

With percentages: puts the new split in force on the running stack's gateway in seconds (a
graceful nginx reload: no request fails), e.g. modelfn traffic flowers 1=0 2=100. Versions not
named get 0; the percentages sum to 100. The change is kept in dist/traffic/<project>.json
(Swarm: dist/traffic/swarm/<stack>.json), so npm run up (modelfn deploy) again keeps it, until
the function's declared traffic changes.

Without: prints the split in force and each version's requests/s, errors/s (status >= 500) and
p99 latency, measured from the versions' own metrics over the next S seconds (default 3).
  --window S   the seconds the figures are measured over
  --compose    act on the compose project (npm run up)
  --swarm      act on the Swarm stack (modelfn deploy), on this node: its gateway's containers
               here are reloaded, and the figures are those of the versions' tasks here
Without --compose or --swarm, it acts on whichever of the two runs a gateway (both: say which).

environment:
  MODELFN_PROJECT             the compose project (default modelfn), as given to up
  MODELFN_STACK               the Swarm stack (default modelfn), as given to deploy
`,
  async run(args) {
    const parsed = parse(this, args, { window: { type: 'string' }, compose: { type: 'boolean' }, swarm: { type: 'boolean' } }, [1, 64]);
    if (!parsed) return 0;
    const [name, ...shares] = parsed.positionals;
    const window = parsed.values.window === undefined ? 3 : Number(parsed.values.window);
    if (!Number.isFinite(window) || window < 1 || window > 600) throw new UsageError(`--window ${String(parsed.values.window)}: a number of seconds from 1 to 600`);
    if (shares.length && parsed.values.window !== undefined) throw new UsageError('--window: only when showing the split (no <version>=<percent>)');
    if (parsed.values.compose && parsed.values.swarm) throw new UsageError('--compose and --swarm: one or the other');
    const { runningOrchestrator, setTraffic, showTraffic } = await import('../../builder/docker/traffic.ts');
    const { projectName } = await import('../../builder/docker/compose.ts');
    const { stackName } = await import('../../builder/docker/swarm.ts');
    const root = process.cwd();
    try {
      const orchestrator = parsed.values.swarm ? 'swarm' : parsed.values.compose ? 'compose' : await runningOrchestrator(projectName({ root }), stackName());
      const project = orchestrator === 'swarm' ? stackName() : projectName({ root });
      if (shares.length) await setTraffic(root, project, name, shares, log, { orchestrator });
      else await showTraffic(root, project, name, window, log, { orchestrator });
      return 0;
    } catch (err) {
      throw engineError(err);
    }
  },
};
