/**
 * The activator's Prometheus metrics: wakes and their time by phase, sleeps, held requests,
 * replicas by state, scaling decisions.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Wake-time buckets in seconds: from a thaw (milliseconds) to a slow container start. */
const WAKE_BUCKETS = [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30];

/** The phases of a wake, each measured from the moment the wake began (first answer: its end to end). */
export type WakePhase = 'container_start' | 'process_start' | 'model_load' | 'warm_up' | 'ready' | 'first_answer';

export function createActivatorMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'modelfn_activator_' });
  return {
    registry,
    wakes: new Counter({ name: 'modelfn_activator_wakes_total', help: 'Wakes of a sleeping replica, by function, mode and result', labelNames: ['function', 'mode', 'result'], registers: [registry] }),
    wakeSeconds: new Histogram({
      name: 'modelfn_activator_wake_seconds',
      help: 'Wake time by phase: container_start (start or unpause returned), process_start (the new process until its model began to load), model_load and warm_up (inside the new process), ready (answering), first_answer (the first request answered), each from the start of the wake except process_start, model_load and warm_up (their own length)',
      labelNames: ['function', 'mode', 'phase'],
      buckets: WAKE_BUCKETS,
      registers: [registry],
    }),
    sleeps: new Counter({ name: 'modelfn_activator_sleeps_total', help: 'Replicas put to sleep, by function and mode', labelNames: ['function', 'mode'], registers: [registry] }),
    requests: new Counter({ name: 'modelfn_activator_requests_total', help: 'Requests the gateway handed to the activator, by function and status', labelNames: ['function', 'status'], registers: [registry] }),
    held: new Gauge({ name: 'modelfn_activator_requests_held', help: 'Requests waiting for a function to wake', labelNames: ['function'], registers: [registry] }),
    heldBytes: new Gauge({ name: 'modelfn_activator_held_bytes', help: 'Bytes of the requests held or passed on now, counted against the byte budget (MODELFN_ACTIVATOR_BUDGET_BYTES), by function', labelNames: ['function'], registers: [registry] }),
    refused: new Counter({ name: 'modelfn_activator_refused_total', help: 'Requests refused (503) because the function\'s or the total byte budget was full, by function', labelNames: ['function'], registers: [registry] }),
    replicas: new Gauge({ name: 'modelfn_activator_replicas', help: 'Replicas by state: awake (answering) or asleep', labelNames: ['function', 'state'], registers: [registry] }),
    scaling: new Counter({ name: 'modelfn_activator_scale_total', help: 'Replicas added or removed with the load, by function and direction', labelNames: ['function', 'direction'], registers: [registry] }),
  };
}

export type ActivatorMetrics = ReturnType<typeof createActivatorMetrics>;
