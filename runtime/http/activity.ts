/**
 * What the activator needs to know of a function's traffic: requests in flight, requests
 * answered, and when the last one ended. Only traffic counts (route-class.ts): probes, metrics
 * scrapes, the live view's polling and refused requests do not, or a health check every few
 * seconds (or an open gateway page) would keep an idle function awake for ever.
 */
import type { MiddlewareHandler } from 'hono';
import { isTraffic, routeClassOf } from '../core/route-class.ts';

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

/**
 * Counts the function's traffic into `activity`.
 *
 * @example app.use(trackActivity(activity));
 */
export const trackActivity = (activity: Activity): MiddlewareHandler => async function trackActivity(c, next) {
  const cls = routeClassOf(c);
  if (!isTraffic(cls)) return next();
  // In flight while it runs (the function is not put to sleep under it); counted once answered,
  // unless it was refused.
  activity.inFlight++;
  try {
    await next();
  } finally {
    activity.inFlight--;
    if (isTraffic(cls, c.res.status)) {
      activity.total++;
      activity.lastEnd = performance.now();
    }
  }
};
