/**
 * arm64 images built on this x64 machine (`modelfn build --images --arch arm64`) and run here
 * under emulation (qemu-user-static registered with binfmt_misc): the iris image is linux/arm64
 * through and through, starts, becomes ready and passes the protocol conformance suite; the
 * compose stack serves arm64 function images behind the gateway. Skipped with a printed reason
 * where the engine or the emulation is missing, but never in CI (.ci/run sets both up).
 *
 * Under Debian 12's qemu-user (7.2) an emulated process reads the host's /proc/cpuinfo, with no
 * ARM processor in it, and onnxruntime's CPU detection (cpuinfo) dereferences NULL on it while
 * its library loads. The test's containers therefore get an arm64 /proc/cpuinfo (a Cortex-A72's,
 * fixtures/arm64-cpuinfo) mounted over it; qemu 8.2 and later emulate the file themselves, and a
 * real arm64 host needs nothing of this. The images are the product as built, unchanged.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { runBuild } from '../../build.ts';
import { functionImage, gatewayImage, runtimeImage } from '../../builder/docker/images.ts';
import { stackDown, stackUp, waitFor } from '../../builder/docker/compose.ts';
import { conformanceSuite, postJson, ROOT } from '../../runtime/testing/index.ts';
import { docker, dockerAvailable, freePort } from '../docker.ts';

const SUITE = 'arm64 images under emulation (test/e2e/arm64.test.ts)';

/** True when arm64 binaries run here; throws in CI when they cannot. */
function emulationAvailable(): boolean {
  if (existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64')) return true;
  const how = 'install qemu-user-static and binfmt-support, mount binfmt_misc and run update-binfmts --enable qemu-aarch64 (.ci/run does)';
  if (process.env.CI === 'true') throw new Error(`${SUITE}: CI=true but arm64 binaries cannot run here: ${how}`);
  process.stdout.write(`\n[skipped] ${SUITE}: arm64 binaries cannot run on this machine: ${how}\n`);
  return false;
}

const available = dockerAvailable(SUITE) && emulationAvailable();
const CPUINFO = join(import.meta.dirname, 'fixtures/arm64-cpuinfo');
const IRIS = { instances: [[5.1, 3.5, 1.4, 0.2]] };

describe.runIf(available)('arm64 images built on x64, run under emulation', () => {
  const tag = `arm64-e2e-${process.pid}`;
  const project = `modelfn-arm64-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), 'modelfn-arm64-'));
  const buildLog: string[] = [];
  let env: Record<string, string> = {};
  let container = '';

  beforeAll(async () => {
    mkdirSync(join(root, 'functions'));
    cpSync(join(ROOT, 'functions/iris'), join(root, 'functions/iris'), { recursive: true });
    symlinkSync(join(ROOT, 'runtime'), join(root, 'runtime'));
    env = { MODELFN_IMAGE_TAG: tag, MODELFN_PORT: String(await freePort()), MODELFN_PROJECT: project };
    Object.assign(process.env, env);
    const started = performance.now();
    const code = await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: true, arch: 'arm64', check: false, log: (l) => buildLog.push(l) });
    expect(code, buildLog.join('\n')).toBe(0);
    process.stdout.write(`\n${SUITE}: images built in ${Math.round((performance.now() - started) / 1000)} s\n`);
  }, 900_000);

  afterAll(async () => {
    if (container) docker(['rm', '-f', container]);
    await stackDown({ root, project, env }).catch(() => {});
    for (const image of [functionImage('iris', tag), gatewayImage(tag)]) {
      try {
        docker(['rmi', '-f', image]);
      } catch {
        // already gone
      }
    }
    rmSync(root, { recursive: true, force: true });
  }, 120_000);

  it('builds linux/arm64 images holding arm64 Node and onnxruntime', () => {
    expect(buildLog.join('\n')).toMatch(/image modelfn\/iris:\S+\s+function iris, linux\/arm64/);
    for (const image of [runtimeImage('arm64'), functionImage('iris', tag)]) {
      expect(docker(['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', image]).trim()).toBe('linux/arm64');
    }
    // ELF e_machine 183 (0xb7) is AArch64: the loader, node and onnxruntime's library.
    const machines = docker(['run', '--rm', '--platform', 'linux/arm64', '--network', 'none', '-v', `${CPUINFO}:/proc/cpuinfo:ro`, '--entrypoint', '/usr/local/bin/node', functionImage('iris', tag), '-p',
      "['/lib/ld-linux-aarch64.so.1', '/usr/local/bin/node', '/app/node_modules/onnxruntime-node/bin/napi-v6/linux/arm64/libonnxruntime.so.1']"
      + ".map((f) => require('fs').readFileSync(f).readUInt16LE(18)).join(' ') + ' ' + process.arch"]).trim();
    expect(machines).toBe('183 183 183 arm64');
  });

  conformanceSuite('iris, a linux/arm64 image under emulation', async () => {
    const port = await freePort();
    container = docker(['run', '-d', '--platform', 'linux/arm64', '--read-only', '-v', `${CPUINFO}:/proc/cpuinfo:ro`, '-p', `127.0.0.1:${port}:8080`, functionImage('iris', tag)]).trim();
    const url = `http://127.0.0.1:${port}`;
    await waitFor('the arm64 iris container ready', async () => {
      const res = await fetch(`${url}/v2/health/ready`, { signal: AbortSignal.timeout(3000) });
      return res.ok || `status ${res.status}`;
    }, 90_000);
    // The image's own health check (Node under emulation too) says healthy.
    await waitFor('the arm64 iris container healthy', async () => {
      const health = docker(['inspect', '--format', '{{.State.Health.Status}}', container]).trim();
      return health === 'healthy' || health;
    }, 90_000);
    return { name: 'iris', request: (path, init) => fetch(`${url}${path}`, init) };
  });

  it('runs the compose stack with the arm64 function image behind the gateway', { timeout: 240_000 }, async () => {
    // The test's own copy of the generated file: the arm64 /proc/cpuinfo for the emulated function.
    const file = join(root, 'docker-compose.yml');
    const spec = parse(readFileSync(file, 'utf8')) as { services: Record<string, { volumes?: string[] }> };
    spec.services.iris.volumes = [...(spec.services.iris.volumes ?? []), `${CPUINFO}:/proc/cpuinfo:ro`];
    writeFileSync(file, stringify(spec));
    const url = await stackUp({ root, project, env }, ['iris']);
    const res = await fetch(`${url}/iris/predict`, postJson(IRIS));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { predictions: unknown[] }).predictions).toHaveLength(1);
    const id = docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=iris']).trim().split('\n')[0];
    const image = docker(['inspect', '--format', '{{.Image}}', id]).trim();
    expect(docker(['image', 'inspect', '--format', '{{.Architecture}}', image]).trim()).toBe('arm64');
    // What the container runs is arm64 code, emulated: its Node says so.
    expect(execFileSync('docker', ['exec', id, '/usr/local/bin/node', '-p', 'process.arch'], { encoding: 'utf8' }).trim()).toBe('arm64');
  });
});
