/**
 * The runtime's schemas use `zod/mini` (its functions are tree-shaken: a bundle carries only the
 * checks it uses, about a fifth of classic zod's minified code). Importing this module sets the
 * English locale, without which zod/mini words every issue "Invalid input"; a module with schemas
 * imports it beside `import * as z from 'zod/mini'` (kept a namespace import, never re-exported as
 * a value, so that esbuild can drop what is not used).
 */
import { config } from 'zod/mini';
import { en } from 'zod/locales';

config(en());
