/**
 * `modelfn traffic`: the split of a function's versions on a running compose stack, shown or
 * changed in seconds without failing a request (builder/docker/traffic.ts).
 */
import { parse, UsageError, type Command } from '../args.ts';
import { engineError, log } from '../engine.ts';

export const traffic: Command = {
  name: 'traffic',
  summary: "show or change the split of a function's versions on the running compose stack",
  help: `usage: modelfn traffic <name> [<version>=<percent> ...] [--window S]

With percentages: puts the new split in force on the running compose stack's gateway in seconds
(a graceful nginx reload: no request fails), e.g. modelfn traffic flowers 1=0 2=100. Versions not
named get 0; the percentages sum to 100. The change is kept in dist/traffic/<project>.json, so
npm run up again keeps it, until the function's declared traffic changes.

Without: prints the split in force and each version's requests/s, errors/s (status >= 500) and
p99 latency, measured from the versions' own metrics over the next S seconds (default 3).
  --window S   the seconds the figures are measured over

environment:
  MODELFN_PROJECT             the compose project (default modelfn), as given to up
`,
  async run(args) {
    const parsed = parse(this, args, { window: { type: 'string' } }, [1, 64]);
    if (!parsed) return 0;
    const [name, ...shares] = parsed.positionals;
    const window = parsed.values.window === undefined ? 3 : Number(parsed.values.window);
    if (!Number.isFinite(window) || window < 1 || window > 600) throw new UsageError(`--window ${String(parsed.values.window)}: a number of seconds from 1 to 600`);
    if (shares.length && parsed.values.window !== undefined) throw new UsageError('--window: only when showing the split (no <version>=<percent>)');
    const { setTraffic, showTraffic } = await import('../../builder/docker/traffic.ts');
    const { projectName } = await import('../../builder/docker/compose.ts');
    const root = process.cwd();
    const project = projectName({ root });
    try {
      if (shares.length) await setTraffic(root, project, name, shares, log);
      else await showTraffic(root, project, name, window, log);
      return 0;
    } catch (err) {
      throw engineError(err);
    }
  },
};
