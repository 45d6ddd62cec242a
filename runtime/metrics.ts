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
  batchSize: Histogram<'model'>;
  batchQueueSeconds: Histogram<'model'>;
  batchQueueDepth: Gauge<'model'>;
}

/** Options for loadModel that feed a function's metrics. */
export function modelMetricsOptions(metrics: Metrics, model: string) {
  return {
    observeInference: (s: number) => metrics.inferenceSeconds.observe({ model }, s),
    batchObserver: {
      batchRows: (rows: number) => metrics.batchSize.observe({ model }, rows),
      queuedSeconds: (s: number) => metrics.batchQueueSeconds.observe({ model }, s),
      queueDepth: (n: number) => metrics.batchQueueDepth.set({ model }, n),
    },
  };
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
    batchSize: new Histogram({
      name: 'modelfn_batch_size',
      help: 'Rows in each batch run by the dynamic batcher',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    batchQueueSeconds: new Histogram({
      name: 'modelfn_batch_queue_seconds',
      help: 'Time requests waited in the batch queue',
      labelNames: ['model'],
      buckets: BUCKETS,
      registers: [registry],
    }),
    batchQueueDepth: new Gauge({
      name: 'modelfn_batch_queue_depth',
      help: 'Requests waiting in the batch queue',
      labelNames: ['model'],
      registers: [registry],
    }),
  };
}
