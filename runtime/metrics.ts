/**
 * Prometheus metrics for one server: requests by route and status and their latency (through
 * @hono/prometheus), inference latency, model load time and requests in flight.
 */
import { prometheus } from '@hono/prometheus';
import type { MiddlewareHandler } from 'hono';
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

type PrometheusMetricOptions = NonNullable<Parameters<typeof prometheus>[0]>['metricOptions'];

/** Latency buckets in seconds, fine enough for sub-millisecond models. */
const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface Metrics {
  registry: Registry;
  /** Counts requests, their latency and those in flight. */
  middleware: MiddlewareHandler[];
  /** `GET /metrics`. */
  handler: MiddlewareHandler;
  inferenceSeconds: Histogram<'model'>;
  modelLoadSeconds: Gauge<'model'>;
}

/**
 * A fresh registry per server, so servers in one process (and tests) never share counters.
 *
 * @example const metrics = createMetrics(); app.use(...metrics.middleware); app.get('/metrics', metrics.handler);
 */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'modelfn_' });
  const { registerMetrics, printMetrics } = prometheus({
    registry,
    prefix: 'modelfn_',
    // The histogram options accept buckets, but the package's option type does not say so.
    metricOptions: { requestDuration: { buckets: BUCKETS } } as unknown as PrometheusMetricOptions,
  });
  const inFlight = new Gauge({ name: 'modelfn_requests_in_flight', help: 'Requests being handled now', registers: [registry] });
  const trackInFlight: MiddlewareHandler = async function trackInFlight(_c, next) {
    inFlight.inc();
    try {
      await next();
    } finally {
      inFlight.dec();
    }
  };
  return {
    registry,
    middleware: [trackInFlight, registerMetrics],
    handler: async (c) => printMetrics(c),
    inferenceSeconds: new Histogram({
      name: 'modelfn_inference_duration_seconds',
      help: 'Time spent in onnxruntime session.run',
      labelNames: ['model'],
      buckets: BUCKETS,
      registers: [registry],
    }),
    modelLoadSeconds: new Gauge({
      name: 'modelfn_model_load_seconds',
      help: 'Time it took to load the model',
      labelNames: ['model'],
      registers: [registry],
    }),
  };
}
