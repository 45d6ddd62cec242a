#!/usr/bin/env node
// The `modelfn` command: runs the TypeScript CLI (cli/modelfn.ts) through tsx, so it works
// from a clone after `npm ci`, with no build step. Both of tsx's loaders, as its own CLI does:
// a function's .ts declaration outside an ESM package (a scratch folder) loads as CommonJS.
import { register as registerCommonJs } from 'tsx/cjs/api';
import { register } from 'tsx/esm/api';

registerCommonJs();
register();
await import('../cli/modelfn.ts');
