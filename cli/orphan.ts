/**
 * Stopping with npm. `npx modelfn start` runs the command under a shell (`sh -c modelfn ...`)
 * that does not pass npm's SIGTERM on: killing npx ends the shell, and the server would go on
 * under PID 1, still listening. A command npm started watches its parent instead, and when the
 * parent is gone signals itself SIGTERM, so it stops as `npm start` (which execs node) stops.
 */

/** How often the parent is looked at: a stopped npx frees the port within about this long. */
const POLL_MS = 500;

/**
 * Under npm (npx, npm exec, npm run: `npm_command` is set), SIGTERM to this process once its
 * parent exits. Outside npm nothing changes: `nohup modelfn start &` outlives its shell, as asked.
 *
 * @example
 * stopWithParent(); // first thing in main()
 */
export function stopWithParent(env: NodeJS.ProcessEnv = process.env, log = (line: string) => process.stderr.write(line)): void {
  if (!env.npm_command) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    // process.ppid is read anew each time: an orphan's parent becomes init or a subreaper.
    if (process.ppid === parent) return;
    clearInterval(timer);
    log(`modelfn: the process that started it (pid ${parent}, ${env.npm_command === 'exec' ? 'npx' : 'npm'}) is gone; stopping\n`);
    process.kill(process.pid, 'SIGTERM');
  }, POLL_MS);
  // A command that is done exits at once: the watch never keeps the process alive.
  timer.unref();
}
