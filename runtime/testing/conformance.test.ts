import { basename } from 'node:path';
import { listFunctionDirs } from '../function/discover.ts';
import { conformanceSuite } from './conformance.ts';
import { ROOT, openFunctionDir } from './helpers.ts';

// Every function in functions/ (examples and zero-code alike) passes the same suite, in process.
for (const dir of listFunctionDirs(`${ROOT}/functions`)) {
  conformanceSuite(basename(dir), async () => {
    const { app, host } = await openFunctionDir(dir);
    return { request: async (path, init) => app.request(path, init), name: host.fn.name, example: host.fn.example };
  });
}
