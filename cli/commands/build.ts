/**
 * `modelfn build` (npm run build): bundles, the generated files, and with --images the images.
 */
import { resolve } from 'node:path';
import { parse, type Command } from '../args.ts';
import { engineError, log } from '../engine.ts';

export const build: Command = {
  name: 'build',
  summary: 'bundles, generated gateway files, and with --images the container images',
  help: `usage: modelfn build [--images] [--arch A] [--check] [--functions DIR] [--out DIR] [--root DIR]

The same as npm run build: validates every declaration at once, bundles each function into
DIR/<name>/ (default: dist), and writes the generated files (nginx/, docker-compose.yml, deploy/)
under the root (default: the current folder). The generated files depend only on functions/.
  --images   also build the runtime, function and gateway images (needs Docker)
  --check    only check that the generated files are up to date (exit 1 if not)
  --arch A   the images' architecture: x64 or arm64 (default: this machine's; another one is
             built, and its build steps run, under emulation: qemu-user-static with binfmt_misc)
`,
  async run(args) {
    const parsed = parse(this, args, {
      images: { type: 'boolean' }, check: { type: 'boolean' }, functions: { type: 'string', default: 'functions' }, arch: { type: 'string' },
      out: { type: 'string', default: 'dist' }, root: { type: 'string', default: '.' },
    }, [0, 0]);
    if (!parsed) return 0;
    // The build's tools (esbuild and the rest) load only when a build runs.
    const { runBuild } = await import('../../build.ts');
    try {
      return await runBuild({
        functionsDir: resolve(parsed.values.functions as string),
        outDir: resolve(parsed.values.out as string),
        root: resolve(parsed.values.root as string),
        images: Boolean(parsed.values.images),
        arch: parsed.values.arch as string | undefined,
        check: Boolean(parsed.values.check),
        log,
      });
    } catch (err) {
      throw engineError(err);
    }
  },
};
