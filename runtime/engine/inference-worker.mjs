// The script of an inference thread when running from source: the thread needs the TypeScript
// loader of its own (loader hooks are per thread), then serves the session. Bundles use themselves.
import { register } from 'tsx/esm/api';

register();
const { serveInferenceThread } = await import('./inference-thread.ts');
await serveInferenceThread();
