/**
 * `GET /stats`: what a function has done over the last minute, read from its own Prometheus
 * metrics (the request counter and latency histogram, the batch-size histogram). The gateway
 * page polls it per function to draw the live view.
 *
 * A replica keeps a snapshot of its cumulative metrics every few seconds; the window is the
 * difference between now and the oldest snapshot of the last minute. Each answer carries the raw
 * window (counts and latency buckets) so the windows of several replicas add up exactly:
 * with `MODELFN_PEERS` (the function's service name and port, which DNS resolves to every
 * replica), the replica asked gathers every replica's window and answers their sum.
 *
 * A function with several versions runs each version as its own service: its MODELFN_PEERS names
 * every version's (builder/policy.ts), each replica's own answer says its version, and the answer
 * gathered has each version's figures beside the function's, with the split in force. That split
 * is the gateway's to know (`modelfn traffic` changes nginx alone): nginx tells it in
 * SPLIT_HEADER on this route, rendered from the configuration it runs; without the header (a
 * replica asked directly) the declared split is shown.
 */
import { lookup } from 'node:dns/promises';
import type { Context, Hono } from 'hono';
import type { Histogram } from 'prom-client';
import type { Metrics } from '../core/metrics.ts';
import { combineReplicas, summarize, versionedStats, type FunctionStats, type StatsWindow } from '../core/stats.ts';
import type { FunctionHost } from '../function/host.ts';
import { isTraffic, routeClass } from '../core/route-class.ts';
import { SPLIT_HEADER, parseSplitHeader } from '../function/traffic.ts';

/** Requests that are work (route-class.ts): polling, probes and refusals are not load. */
const isWork = (method: string, route: string, status: number) => isTraffic(routeClass(method, route), status);

const WINDOW_MS = 60_000;
/** How long one gathering of every replica's figures answers /stats. */
const STATS_CACHE_MS = 1000;
/** Most replicas asked in one gathering (a function runs at most MAX_REPLICAS). */
const MAX_PEERS = 64;
const SNAPSHOT_MS = 5_000;
/** No /stats for this long: stop taking snapshots. */
const IDLE_MS = 120_000;

interface Snapshot {
  at: number;
  requests: number;
  errors: number;
  cumulative: number[];
  batches: number;
  batchRows: number;
}

type HistogramValues = Awaited<ReturnType<Histogram['get']>>['values'];

/** Reads the cumulative totals from the registry's metrics. */
async function snapshot(metrics: Metrics, le: readonly number[]): Promise<Snapshot> {
  const duration = (await metrics.requestDuration.get()).values;
  const cumulative = new Array<number>(le.length + 1).fill(0);
  let requests = 0;
  let errors = 0;
  for (const v of duration as HistogramValues) {
    const labels = v.labels as Record<string, string | number>;
    if (!isWork(String(labels.method), String(labels.route), Number(labels.status))) continue;
    if (v.metricName?.endsWith('_count')) {
      requests += v.value;
      if (Number(labels.status) >= 500) errors += v.value;
    } else if (v.metricName?.endsWith('_bucket')) {
      const i = labels.le === '+Inf' ? le.length : le.indexOf(Number(labels.le));
      if (i >= 0) cumulative[i] += v.value;
    }
  }
  let batches = 0;
  let batchRows = 0;
  for (const v of (await metrics.batchSize.get()).values as HistogramValues) {
    if (v.metricName?.endsWith('_count')) batches += v.value;
    else if (v.metricName?.endsWith('_sum')) batchRows += v.value;
  }
  return { at: Date.now(), requests, errors, cumulative, batches, batchRows };
}

export interface StatsOptions {
  /** `host:port` (comma-separated, each resolved to all its addresses) reaching every replica (MODELFN_PEERS); none: this replica alone. */
  peers?: string;
}

/**
 * Keeps the snapshots of one replica and adds `GET /stats` to its app.
 *
 * @example statsRoute(app, host, metrics, { peers: config.peers });
 */
export function statsRoute(app: Hono, host: FunctionHost, metrics: Metrics, options: StatsOptions = {}): { stop(): void } {
  const le = [...metrics.latencyBuckets];
  // A fresh registry counts from zero: the first base is zero, now.
  const snapshots: Snapshot[] = [{ at: Date.now(), requests: 0, errors: 0, cumulative: new Array<number>(le.length + 1).fill(0), batches: 0, batchRows: 0 }];
  // Snapshots are taken only while someone looks: the timer starts with the first /stats and
  // stops when nobody has asked for a while (the window then says how long it really is).
  let timer: NodeJS.Timeout | undefined;
  let lastAsked = 0;
  const watch = () => {
    lastAsked = Date.now();
    if (timer) return;
    timer = setInterval(() => {
      if (Date.now() - lastAsked > IDLE_MS) {
        clearInterval(timer);
        timer = undefined;
        return;
      }
      void snapshot(metrics, le).then((next) => {
        snapshots.push(next);
        // The base is the newest snapshot at least a minute old (or the oldest one there is).
        const cut = Date.now() - WINDOW_MS;
        while (snapshots.length > 1 && snapshots[1].at <= cut) snapshots.shift();
      });
    }, SNAPSHOT_MS);
    timer.unref();
  };

  const ownWindow = async (): Promise<StatsWindow> => {
    const base = snapshots[0];
    const now = await snapshot(metrics, le);
    const counts = now.cumulative.map((c, i) => c - base.cumulative[i]);
    // Cumulative buckets to counts per bucket.
    for (let i = counts.length - 1; i > 0; i--) counts[i] -= counts[i - 1];
    return {
      seconds: (now.at - base.at) / 1000,
      requests: now.requests - base.requests,
      errors: now.errors - base.errors,
      le,
      counts,
      batches: now.batches - base.batches,
      batchRows: now.batchRows - base.batchRows,
    };
  };
  const fn = host.fn;
  // One version among several: its own answer says which, so a gathering can tell them apart.
  const versioned = fn.versions.length > 1;
  const ownStats = async (): Promise<FunctionStats> => {
    const state = host.state;
    const own = summarize(fn.name, state, await ownWindow(), 1, state === 'ready' ? 1 : 0, state === 'ready' ? undefined : host.notReadyReason());
    return versioned ? { ...own, version: fn.version } : own;
  };

  // Every replica's own figures, gathered at most once a second whoever asks (one gathering at a
  // time; callers meanwhile share it): a page open in many browsers costs the replicas no more.
  let gathered: { at: number; answers: Promise<FunctionStats[]> } | undefined;
  const allAnswers = async (peers: string): Promise<FunctionStats[]> => {
    const answers = await peerStats(peers);
    return answers.length ? answers : [await ownStats()];
  };

  app.get('/stats', async (c: Context) => {
    watch();
    // Never compressed: nginx's page lookup (SSI) reads the answer as text, and its subrequest
    // carries the browser's Accept-Encoding (a function with versions answers over 1 KiB).
    c.header('Cache-Control', 'no-store, no-transform');
    if (!options.peers || c.req.query('replica') === 'self') return c.json(await ownStats());
    if (!gathered || performance.now() - gathered.at > STATS_CACHE_MS) {
      const answers = allAnswers(options.peers);
      gathered = { at: performance.now(), answers };
      // A failed gathering is not kept.
      answers.catch(() => { if (gathered?.answers === answers) gathered = undefined; });
    }
    const answers = await gathered.answers;
    if (!versioned) return c.json(combineReplicas(fn.name, answers));
    const names = fn.versions.map((v) => v.version);
    const split = parseSplitHeader(c.req.header(SPLIT_HEADER), names) ?? { traffic: fn.traffic, shadow: fn.shadow };
    return c.json(versionedStats(fn.name, names, answers, split));
  });
  return { stop: () => clearInterval(timer) };
}

/**
 * Every replica's own stats: `peers` is a comma-separated list of `host:port`, each host
 * resolved through DNS to all its addresses (a compose or swarm service name gives every
 * replica). Replicas that do not answer in time are left out.
 */
async function peerStats(peers: string): Promise<FunctionStats[]> {
  const targets = (await Promise.all(peers.split(',').map((p) => p.trim()).filter(Boolean).map(async (peer) => {
    const at = peer.lastIndexOf(':');
    const [name, port] = at > 0 ? [peer.slice(0, at), peer.slice(at + 1)] : [peer, '8080'];
    try {
      return (await lookup(name, { all: true })).map(({ address, family }) => `${family === 6 ? `[${address}]` : address}:${port}`);
    } catch {
      return [];
    }
  }))).flat();
  const answers = await Promise.all([...new Set(targets)].slice(0, MAX_PEERS).map(async (target) => {
    try {
      const res = await fetch(`http://${target}/stats?replica=self`, { signal: AbortSignal.timeout(1000) });
      return res.ok ? ((await res.json()) as FunctionStats) : undefined;
    } catch {
      return undefined;
    }
  }));
  return answers.filter((a): a is FunctionStats => a !== undefined);
}
