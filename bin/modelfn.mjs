#!/usr/bin/env node
// The `modelfn` command: runs the TypeScript CLI (cli/modelfn.ts) through tsx, so it works
// from a clone after `npm ci`, with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/modelfn.ts');
