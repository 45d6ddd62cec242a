/**
 * A function with versions on the real Docker engine: built into one image, each version its own
 * compose service, behind the generated nginx gateway on 127.0.0.1. The split holds over 1,000
 * requests, versioned paths reach their version, a traffic key keeps its version, the shadow gets
 * its share without the client seeing it, and down leaves nothing.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild } from '../../build.ts';
import { functionImage, gatewayImage } from '../../builder/docker/images.ts';
import { stackDown, stackUp } from '../../builder/docker/compose.ts';
import { chooseVersion } from '../../runtime/function/traffic.ts';
import { ROOT, postJson } from '../../runtime/testing/index.ts';
import { docker, dockerAvailable, freePort, projectLeftovers } from '../docker.ts';

const available = dockerAvailable('versions on compose (test/e2e/versions.test.ts)');
const FLOWER = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] };

describe.runIf(available)('a function with versions on the compose stack', () => {
  const tag = `e2e-versions-${process.pid}`;
  const project = `modelfn-e2e-versions-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), 'modelfn-e2e-versions-'));
  const buildLog: string[] = [];
  let url = '';
  let env: Record<string, string> = {};
  let down = false;
  const stack = () => ({ root, project, env });

  beforeAll(async () => {
    for (const v of ['1', '2', '3']) {
      mkdirSync(join(root, 'functions/flowers', v), { recursive: true });
      copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(root, 'functions/flowers', v, 'model.onnx'));
    }
    writeFileSync(join(root, 'functions/flowers/function.ts'), "export default { traffic: { '1': 80, '2': 20 }, shadow: { '3': 50 } };\n");
    symlinkSync(join(ROOT, 'runtime'), join(root, 'runtime'));
    env = { MODELFN_IMAGE_TAG: tag, MODELFN_PORT: String(await freePort()), MODELFN_PROJECT: project };
    Object.assign(process.env, env);
    const code = await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: true, check: false, log: (l) => buildLog.push(l) });
    expect(code, buildLog.join('\n')).toBe(0);
    url = await stackUp(stack(), ['flowers/versions/1', 'flowers/versions/2', 'flowers/versions/3']);
  }, 600_000);

  afterAll(async () => {
    if (!down) await stackDown(stack()).catch(() => {});
    for (const image of [functionImage('flowers', tag), gatewayImage(tag)]) {
      try {
        docker(['rmi', '-f', image]);
      } catch {
        // already gone
      }
    }
    rmSync(root, { recursive: true, force: true });
  }, 120_000);

  const versionOf = async (res: Response) => {
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    return res.headers.get('x-modelfn-version')!;
  };

  it('runs each version as its own service', () => {
    const services = docker(['ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Label "com.docker.compose.service"}}']).trim().split('\n').sort();
    expect(services).toEqual(['flowers-v1', 'flowers-v2', 'flowers-v3', 'gateway']);
  });

  it('splits 1,000 unversioned requests 80/20 within 5 points, the shadow answering none', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const v = await versionOf(await fetch(`${url}/v2/models/flowers/infer`, postJson(FLOWER)));
      counts[v] = (counts[v] ?? 0) + 1;
    }
    expect(Object.keys(counts).sort()).toEqual(['1', '2']);
    expect(Math.abs(counts['2'] / 1000 - 0.2)).toBeLessThan(0.05);
  });

  it('reaches each version on its versioned paths every time, and keeps a traffic key on the version npm start picks', async () => {
    for (const v of ['1', '2', '3']) {
      for (let i = 0; i < 20; i++) expect(await versionOf(await fetch(`${url}/v2/models/flowers/versions/${v}/infer`, postJson(FLOWER)))).toBe(v);
    }
    for (const key of ['user-1', 'user-42', 'k-7', 'session-xyz']) {
      const expected = chooseVersion([{ version: '1', percent: 80 }, { version: '2', percent: 20 }], key);
      for (let i = 0; i < 5; i++) expect(await versionOf(await fetch(`${url}/flowers/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }, { 'X-Modelfn-Traffic-Key': key })))).toBe(expected);
    }
  });

  it('mirrors about half of the requests to the shadow version, counted in its metrics', async () => {
    // The shadow's metrics, read in its own container (its port is not published).
    const container = docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=flowers-v3']).trim();
    const runs = () => {
      const text = docker(['exec', container, '/usr/local/bin/node', '-e', "fetch('http://127.0.0.1:8080/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]);
      return Number(/^modelfn_inference_duration_seconds_count\{version="3",model="flowers"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = runs();
    for (let i = 0; i < 400; i++) expect(await versionOf(await fetch(`${url}/v2/models/flowers/infer`, postJson(FLOWER)))).not.toBe('3');
    await new Promise((r) => setTimeout(r, 1000));
    const copies = runs() - before;
    expect(copies).toBeGreaterThan(150);
    expect(copies).toBeLessThan(250);
  });

  it('leaves nothing after down', async () => {
    await stackDown(stack());
    down = true;
    expect(projectLeftovers(project)).toBe('');
  });
});
