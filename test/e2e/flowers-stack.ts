/**
 * A function with versions on the real compose stack, for the end-to-end tests of versions and
 * rollouts: a temporary project whose function `flowers` has one model per version folder and
 * the declaration given, built into images under a tag of its own, brought up under a compose
 * project of its own with the gateway on a free port of 127.0.0.1, and taken down with its images.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runBuild } from '../../build.ts';
import { functionImage, gatewayImage } from '../../builder/docker/images.ts';
import { stackDown, stackUp } from '../../builder/docker/compose.ts';
import { ROOT, postJson } from '../../runtime/testing/index.ts';
import { docker, freePort } from '../docker.ts';

/** A real flower, as the protocol sends it: iris's first sample. */
export const FLOWER = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] };

/** One answer a looping client got: its status (or why the request failed), the version that gave it, and when it came. */
export interface Answer {
  status: number | string;
  version: string | null;
  at: number;
}

/**
 * The stack of `name` (the test's name, in its tag, project and folder): `up` in beforeAll,
 * `teardown` in afterAll.
 *
 * @example const flowers = flowersStack('rollout', { 1: irisModel, 2: irisModel }, "export default { traffic: { '1': 100 } };\n");
 */
export function flowersStack(name: string, models: Record<string, string>, declaration: string) {
  const tag = `e2e-${name}-${process.pid}`;
  const project = `modelfn-e2e-${name}-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), `modelfn-e2e-${name}-`));
  const stack = {
    tag,
    project,
    root,
    url: '',
    env: {} as Record<string, string>,
    buildLog: [] as string[],
    down: false,
    options: () => ({ root, project, env: stack.env }),

    /** Writes the project, builds its images and brings the stack up, waiting for every version. */
    async up(): Promise<void> {
      for (const [v, model] of Object.entries(models)) {
        mkdirSync(join(root, 'functions/flowers', v), { recursive: true });
        copyFileSync(model, join(root, 'functions/flowers', v, 'model.onnx'));
      }
      writeFileSync(join(root, 'functions/flowers/function.ts'), declaration);
      symlinkSync(join(ROOT, 'runtime'), join(root, 'runtime'));
      stack.env = { MODELFN_IMAGE_TAG: tag, MODELFN_PORT: String(await freePort()), MODELFN_PROJECT: project };
      Object.assign(process.env, stack.env);
      const code = await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: true, check: false, log: (l) => stack.buildLog.push(l) });
      expect(code, stack.buildLog.join('\n')).toBe(0);
      stack.url = await stackUp(stack.options(), Object.keys(models).map((v) => `flowers/versions/${v}`));
    },

    /** Down (unless a test took it down), the images removed, the project's folder too. */
    async teardown(): Promise<void> {
      if (!stack.down) await stackDown(stack.options()).catch(() => {});
      for (const image of [functionImage('flowers', tag), gatewayImage(tag)]) {
        try {
          docker(['rmi', '-f', image]);
        } catch {
          // already gone
        }
      }
      rmSync(root, { recursive: true, force: true });
    },

    /** `modelfn <args>` in the project's folder with its settings: exit code, output, and how long it took. */
    cli: (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string; ms: number }>((resolve) => {
      const started = performance.now();
      execFile(process.execPath, [join(ROOT, 'bin/modelfn.mjs'), ...args], { cwd: root, env: { ...process.env, ...stack.env }, timeout: 300_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr, ms: performance.now() - started });
      });
    }),

    /** A few clients sending the flower to the unversioned path in a loop until stopped, keeping every answer. */
    load(clients: number) {
      const answers: Answer[] = [];
      let running = true;
      const loops = Array.from({ length: clients }, async () => {
        while (running) {
          try {
            const res = await fetch(`${stack.url}/v2/models/flowers/infer`, postJson(FLOWER));
            await res.arrayBuffer();
            answers.push({ status: res.status, version: res.headers.get('x-modelfn-version'), at: performance.now() });
          } catch (err) {
            answers.push({ status: `failed: ${(err as Error).message} ${String((err as { cause?: unknown }).cause ?? '')}`, version: null, at: performance.now() });
          }
        }
      });
      return { answers, stop: async () => { running = false; await Promise.all(loops); } };
    },
  };
  return stack;
}
