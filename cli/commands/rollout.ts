/**
 * `modelfn rollout`: a new version of a function moved to all of its traffic in steps on the
 * running compose stack, each step judged against the stable version on live traffic, rolled
 * back at the first regression (builder/docker/rollout.ts, builder/rollout.ts).
 */
import { parse, UsageError, type Command } from '../args.ts';
import { engineError, log } from '../engine.ts';
import { ROLLOUT_DEFAULTS as D, rolloutOptions, type RolloutFlags } from '../../builder/rollout.ts';

const FLAGS = ['steps', 'interval', 'max-error-rate', 'max-p99-ratio', 'p99-slack', 'min-requests', 'max-wait'] as const;

export const rollout: Command = {
  name: 'rollout',
  summary: 'move traffic to a new version in steps, rolling back at the first regression',
  help: `usage: modelfn rollout <name> <version> [options]

Moves the function's unversioned traffic to <version> on the running compose stack in steps
(modelfn traffic's graceful reload: no request fails for the change itself). At each step it
watches live traffic for --interval seconds and compares, from each version's own metrics, the
new version with the stable one (the other version with the largest share before the rollout):
  - its error rate (answers with status >= 500), and
  - its p99 latency.
At the first regression it puts back the split in force before the rollout, says why in one line
(which metric, both values, the threshold) and exits 1. Too little traffic to judge is never a
pass: the step goes on, interval by interval, up to --max-wait seconds, then the rollout fails
and rolls back. Ctrl-C (or SIGTERM) rolls back too, then exits 1. Promoted, the new version keeps
100% through npm run up until the function's declared traffic changes (as modelfn traffic keeps
a change). Other versions keep their proportions of the rest at each step; steps at or below the
new version's share before the rollout are skipped.

options:
  --steps P,P,...        the new version's percent at each step, increasing, ending at 100 (default ${D.steps.join(',')})
  --interval S           seconds each step is watched before it is judged (default ${D.intervalSeconds})
  --max-error-rate P     percentage points the new version's error rate may lie above the stable
                         one's (default ${D.maxErrorRate})
  --max-p99-ratio R      its p99 may reach R times the stable one's... (default ${D.maxP99Ratio})
  --p99-slack MS         ...or the stable one's plus MS milliseconds, whichever is larger (default ${D.p99SlackMs})
  --min-requests N       requests the new version must answer in a step to be judged (default ${D.minRequests})
  --max-wait S           how much longer than --interval a step may wait for them (default 4 intervals)

At the last step the stable version gets no traffic: the new version is compared with the stable
one's figures at the latest step where it answered --min-requests. Without any, the new version's
error rate is held against 0 and its p99 is not judged. A version without a running container is
refused before anything changes.

exit codes: 0 promoted; 1 rolled back (a regression, too little traffic, Ctrl-C) or refused;
2 a bad flag or argument.

environment:
  MODELFN_PROJECT             the compose project (default modelfn), as given to up

example:
  modelfn rollout iris 2 --steps 5,25,50,100 --interval 120
`,
  async run(args) {
    const parsed = parse(this, args, Object.fromEntries(FLAGS.map((f) => [f, { type: 'string' as const }])), [2, 2]);
    if (!parsed) return 0;
    const [name, version] = parsed.positionals;
    const options = rolloutOptions(parsed.values as RolloutFlags);
    if (typeof options === 'string') throw new UsageError(options);
    const { rollout: run } = await import('../../builder/docker/rollout.ts');
    const { projectName } = await import('../../builder/docker/compose.ts');
    const root = process.cwd();
    const project = projectName({ root });
    // Ctrl-C rolls back before the process ends: the signals abort the rollout instead of killing it.
    const controller = new AbortController();
    const stop = () => {
      if (controller.signal.aborted) log(`${name}: rolling back, a moment`);
      controller.abort();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    try {
      await run(root, project, name, version, options, log, controller.signal);
      return 0;
    } catch (err) {
      throw engineError(err);
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  },
};
