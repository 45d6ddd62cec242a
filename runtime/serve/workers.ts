/**
 * Several server processes for one function inside one container (MODELFN_WORKERS): a primary
 * forks the workers, which share the port; it restarts a worker that dies, with backoff, and on
 * SIGTERM/SIGINT asks every worker to drain and exits once they have.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../core/log.ts';

const LISTENING = 'modelfn:listening';

/** Tells the primary this worker is serving (a no-op without one). */
export function reportListening(): void {
  if (cluster.isWorker) process.send?.(LISTENING);
}

/**
 * Runs `serveOne` in `workers` processes (or in this one when workers is 1).
 *
 * @example await serveWithWorkers(2, () => start(), logger);
 */
export async function serveWithWorkers(workers: number, serveOne: () => Promise<void>, logger: Logger): Promise<void> {
  if (workers <= 1 || !cluster.isPrimary) return serveOne();
  let stopping = false;
  const failures = new Map<number, number>();
  const live = new Set<Worker>();

  const fork = (slot: number) => {
    const worker = cluster.fork({ MODELFN_WORKER_ID: String(slot) });
    let listening = false;
    live.add(worker);
    worker.on('message', (m) => {
      if (m === LISTENING) {
        listening = true;
        failures.set(slot, 0);
      }
    });
    worker.on('exit', (code, signal) => {
      live.delete(worker);
      if (stopping) {
        if (live.size === 0) finish();
        return;
      }
      if (!listening) {
        // A worker that could not start (bad model, bad settings) has said why: stop everything.
        stopping = true;
        for (const w of live) w.process.kill('SIGTERM');
        process.exitCode = code || 1;
        if (live.size === 0) finish();
        return;
      }
      const n = (failures.get(slot) ?? 0) + 1;
      failures.set(slot, n);
      const delay = Math.min(30_000, 100 * 2 ** (n - 1));
      logger.log('warn', 'worker died; restarting', { worker: slot, code, signal, restart_in_ms: delay });
      setTimeout(() => !stopping && fork(slot), delay);
    });
  };

  const finish = () => process.exit(process.exitCode ?? 0);
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.log('info', 'signal received', { signal, workers: live.size });
    if (live.size === 0) finish();
    for (const w of live) {
      w.process.kill('SIGTERM');
      w.once('exit', (code) => {
        if (code) process.exitCode = code;
      });
    }
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  for (let slot = 0; slot < workers; slot++) fork(slot);
}
