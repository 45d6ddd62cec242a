/** The benchmark MLP with dynamic batching off, to measure what batching brings. */
import { defineFunction } from '../../../runtime/index.ts';

export default defineFunction({
  description: 'Benchmark MLP 784-1024-1024-10, dynamic batching off.',
  batching: { enabled: false },
  limits: { bodySize: '16mb' },
});
