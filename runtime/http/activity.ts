/**
 * What the activator needs to know of a function's traffic: requests in flight, requests
 * answered, and when the last one ended. Probes and metrics scrapes do not count, or a health
 * check every few seconds would keep an idle function awake for ever.
 */
import type { MiddlewareHandler } from 'hono';

export interface Activity {
  inFlight: number;
  /** Requests answered since the process started. */
  total: number;
  /** performance.now() when the last request ended (or the process started). */
  lastEnd: number;
}

export const createActivity = (): Activity => ({ inFlight: 0, total: 0, lastEnd: performance.now() });

/** Milliseconds since the last request ended; 0 while one is in flight. */
export const idleMs = (activity: Activity): number => (activity.inFlight > 0 ? 0 : performance.now() - activity.lastEnd);

/** Paths that are not traffic: the engine's probes and the metrics scrape. */
const NOT_TRAFFIC = new Set(['/v2/health/live', '/v2/health/ready', '/metrics']);

/**
 * Counts the function's traffic into `activity`.
 *
 * @example app.use(trackActivity(activity));
 */
export const trackActivity = (activity: Activity): MiddlewareHandler => async function trackActivity(c, next) {
  if (NOT_TRAFFIC.has(c.req.path)) return next();
  activity.inFlight++;
  try {
    await next();
  } finally {
    activity.inFlight--;
    activity.total++;
    activity.lastEnd = performance.now();
  }
};
