import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runBuild } from '../build.ts';
import { generatedFiles } from '../builder/generate.ts';
import { describeFunctions } from '../runtime/pages/describe.ts';
import { discoverFunctions } from '../builder/functions.ts';
import { TIMEOUT_GRACE_MS } from '../builder/policy.ts';
import { readConfig } from '../runtime/core/config.ts';
import { resolveDeclaration } from '../runtime/function/check.ts';
import { ROOT } from '../runtime/testing/index.ts';
import { gatewayNginxImage } from './docker.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelfn-build-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const MODEL = join(ROOT, 'functions/iris/model.onnx');

function fnDir(root: string, name: string, declaration?: string, model = true): void {
  mkdirSync(join(root, name), { recursive: true });
  if (model) copyFileSync(MODEL, join(root, name, 'model.onnx'));
  if (declaration) writeFileSync(join(root, name, 'function.ts'), declaration);
}

/**
 * Builds one function (`declaration` in functions/<name>/function.ts) into its own folder outside
 * the source tree, where the bundle finds onnxruntime as in the image: in a node_modules above it.
 * Returns the bundle's folder.
 */
async function bundleOne(tag: string, name: string, declaration: string): Promise<string> {
  const root = join(scratch, tag);
  fnDir(root, name, declaration);
  const out = join(scratch, `${tag}-dist`);
  if (!existsSync(join(scratch, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(scratch, 'node_modules'));
  expect(await runBuild({ functionsDir: root, outDir: out, root: join(scratch, `${tag}-out`), images: false, check: false, log: () => {} })).toBe(0);
  return join(out, name);
}

describe('npm run build', () => {
  it('reports every problem of every declaration in one list and exits 1', async () => {
    const root = join(scratch, 'bad');
    fnDir(root, 'alpha', "export default { prefix: '/shared' };\n");
    fnDir(root, 'beta', "export default { prefix: '/shared' };\n");
    fnDir(root, 'gamma', "export default { name: 'alpha' };\n");
    fnDir(root, 'Bad_Name');
    fnDir(root, 'nomodel', 'export default {};\n', false);
    fnDir(root, 'reserved', "export default { prefix: '/v2/x' };\n");
    fnDir(root, 'limits', "export default { limits: { bodySize: 'lots' } };\n");
    // A model that is not ONNX, named in the same list as the declarations' problems (not in a second round).
    fnDir(root, 'notonnx', undefined, false);
    writeFileSync(join(root, 'notonnx/model.onnx'), 'this is not a model');
    // Versions: a split naming a version that is not there, and a version whose model is not ONNX.
    fnDir(root, 'split', "export default { traffic: { '1': 50, '3': 50 } };\n", false);
    fnDir(root, 'badversion', undefined, false);
    for (const v of ['1', '2']) {
      fnDir(join(root, 'split'), v);
      fnDir(join(root, 'badversion'), v, undefined, v === '1');
    }
    writeFileSync(join(root, 'badversion/2/model.onnx'), 'this is not a model either');
    const log: string[] = [];
    const code = await runBuild({ functionsDir: root, outDir: join(scratch, 'bad-dist'), root: join(scratch, 'bad-out'), images: false, check: false, log: (l) => log.push(l) });
    expect(code).toBe(1);
    const text = log.join('\n');
    expect(log[0]).toBe('modelfn build: 9 problems:');
    expect(text).toMatch(/split\/function.ts: traffic.3: no version '3' \(versions: 1, 2\)/);
    expect(text).toMatch(/badversion\/2\/model.onnx: not a valid ONNX model/);
    expect(text).toMatch(/notonnx\/model.onnx: not a valid ONNX model/);
    expect(text).toMatch(/Bad_Name: the folder name 'Bad_Name' is not a valid function name/);
    expect(text).toMatch(/nomodel\/model.onnx: model file not found/);
    expect(text).toMatch(/limits\/function.ts: limits.bodySize: must be bytes or a size/);
    expect(text).toMatch(/beta\/function.ts: prefix '\/shared' is also the prefix of .*alpha\/function.ts/);
    expect(text).toMatch(/gamma\/function.ts: name 'alpha' is also the name of .*alpha\/function.ts/);
    expect(text).toMatch(/reserved\/function.ts: prefix '\/v2\/x' is reserved for the gateway/);
    expect(existsSync(join(scratch, 'bad-dist'))).toBe(false);
  });

  it('bundles each function into minified ESM (the server: main.mjs and its chunks; the inference thread) with source maps and the model', async () => {
    const root = join(scratch, 'good');
    fnDir(root, 'plain');
    const log: string[] = [];
    const out = join(scratch, 'good-dist');
    expect(await runBuild({ functionsDir: root, outDir: out, root: join(scratch, 'good-out'), images: false, check: false, log: (l) => log.push(l) })).toBe(0);
    const serverFiles = readdirSync(join(out, 'plain')).filter((f) => f.endsWith('.mjs') && f !== 'inference.mjs');
    // main.mjs starts the inference thread, then imports the server's chunk: Hono and the declaration are not in it.
    const main = readFileSync(join(out, 'plain/main.mjs'), 'utf8');
    expect(main.length).toBeLessThan(4096);
    expect(main).toContain('sourceMappingURL=main.mjs.map');
    expect(main).toMatch(/import\("\.\/server-[A-Z0-9]+\.mjs"\)/);
    const bundle = serverFiles.map((f) => readFileSync(join(out, 'plain', f), 'utf8')).join('\n');
    // Minified: most bytes on very long lines (the rest: newlines inside template strings, such as the
    // pages' CSS and scripts; unminified, nearly nothing is on such lines).
    const onLongLines = bundle.split('\n').filter((line) => line.length > 5000).reduce((sum, line) => sum + line.length, 0);
    expect(onLongLines / bundle.length).toBeGreaterThan(0.75);
    // zod/mini imported as a namespace (runtime/core/zod.ts): esbuild keeps only the checks the
    // declarations use. (Classic zod imported as `import { z }` put all of zod in: 680 KB in all.)
    expect(bundle.length).toBeLessThan(300_000);
    // @hono/node-server's HTTP/2 checks get runtime/serve/http1-only.ts: a start loads neither http2 nor tls.
    expect(bundle).not.toMatch(/["'](node:)?http2["']/);
    for (const f of serverFiles) expect(JSON.parse(readFileSync(join(out, 'plain', `${f}.map`), 'utf8')).version).toBe(3);
    // onnxruntime's native library is the inference thread's: the server loads it only without a thread.
    expect(bundle).not.toMatch(/from\s*"onnxruntime-node"/);
    const thread = readFileSync(join(out, 'plain/inference.mjs'), 'utf8');
    // onnxruntime-node's JavaScript is bundled into the thread's script (one file to resolve and read
    // at start); only its native binding is required, by the installed package's path.
    expect(thread).not.toMatch(/(require\(|import\(|from)\s*["']onnxruntime-node["']/);
    expect(thread).toContain('onnxruntime-node/bin/napi-v6/${process.platform}/${process.arch}/onnxruntime_binding.node');
    expect(thread).toContain('sourceMappingURL=inference.mjs.map');
    expect(readFileSync(join(out, 'plain/model.onnx'))).toEqual(readFileSync(MODEL));
    expect(log.join('\n')).toMatch(/plain\s+\d+(\.\d)? KiB\s+\d+(\.\d)? MiB\s+372 B/);
    // The bundle runs on its own, away from the source tree.
    const env = { ...process.env, PORT: '0', MODELFN_HOST: '127.0.0.1' };
    const broken = join(scratch, 'good-dist-broken');
    mkdirSync(broken);
    if (!existsSync(join(scratch, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(scratch, 'node_modules'));
    for (const f of [...serverFiles, 'inference.mjs']) copyFileSync(join(out, 'plain', f), join(broken, f));
    writeFileSync(join(broken, 'model.onnx'), 'garbage');
    let stderr = '';
    try {
      execFileSync(process.execPath, [join(broken, 'main.mjs')], { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    } catch (err) {
      stderr = String((err as { stderr: Buffer }).stderr);
      expect((err as { status: number }).status).toBe(1);
    }
    expect(stderr).toMatch(/model.onnx: not a valid ONNX model/);
  });

  it('builds a project kept outside this repository, run from its own folder', () => {
    const project = join(scratch, 'own-project');
    // The project's own import of the runtime (split so that test/imports.test.ts does not take it for this file's).
    fnDir(join(project, 'functions'), 'hello', "import { defineFunction } from '../../" + "runtime/index.ts';\nexport default defineFunction({ description: 'hello from a project of its own' });\n");
    symlinkSync(join(ROOT, 'runtime'), join(project, 'runtime'));
    const run = spawnSync(process.execPath, [join(ROOT, 'bin/modelfn.mjs'), 'build'], { cwd: project, encoding: 'utf8', env: { ...process.env, MODELFN_DEBUG: '1' } });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    const hello = join(project, 'dist/hello');
    expect(readdirSync(hello).filter((f) => f.endsWith('.mjs')).map((f) => readFileSync(join(hello, f), 'utf8')).join('\n')).toContain('hello from a project of its own');
  });

  it("runs the declaration's code once: the inference thread's script is onnxruntime and the engine only", async () => {
    const bundle = await bundleOne('once', 'counted', "console.log('declaration evaluated');\nexport default {};\n");
    const child = spawn(process.execPath, [join(bundle, 'main.mjs')], { env: { ...process.env, PORT: '0', MODELFN_HOST: '127.0.0.1' }, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stderr.on('data', (d) => (output += d));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        output += d;
        const port = /"msg":"listening".*"port":(\d+)/.exec(output)?.[1];
        if (port) resolve(`http://127.0.0.1:${port}`);
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
    });
    try {
      const res = await fetch(`${url}/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ instances: [[5.1, 3.5, 1.4, 0.2]] }) });
      expect(res.status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    expect(output.match(/declaration evaluated/g)).toHaveLength(1);
    // The thread's script holds none of the HTTP side (Hono, zod, prom-client, pages).
    const thread = readFileSync(join(bundle, 'inference.mjs'), 'utf8');
    expect(thread.length).toBeLessThan(80_000);
    expect(thread).not.toMatch(/declaration evaluated|hono|prom-client|openapi/i);
  });

  it('exits with its own code and one line when it cannot start, never an abort of its early inference thread', async () => {
    // Its API keys are nowhere: the start stops at the declaration, while the thread started first
    // is still loading onnxruntime and creating the guessed session (exiting inside that aborted,
    // 1 to 2 runs in 8). Eight plain starts (exit 1) and eight image-build starts (exit 0).
    const bundle = await bundleOne('nokeys', 'locked', "export default { auth: { apiKeys: 'locked-keys' } };\n");
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', MODELFN_HOST: '127.0.0.1' };
    delete env.MODELFN_API_KEYS_LOCKED;
    const start = (args: string[]) => new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [join(bundle, 'main.mjs'), ...args], { env, cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.once('exit', (code, signal) => resolve({ code, signal, stderr }));
    });
    for (let i = 0; i < 8; i++) {
      const plain = await start([]);
      expect([plain.code, plain.signal], plain.stderr).toEqual([1, null]);
      expect(plain.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^modelfn: .*locked\/function\.ts: auth\.apiKeys: no API keys found/)]);
      const priming = await start(['--prime-compile-cache']);
      expect([priming.code, priming.signal], priming.stderr).toEqual([0, null]);
      expect(priming.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^modelfn: the compile cache is not filled: .*no API keys found/)]);
    }
  }, 60_000);

  it('checks its declaration at start only when it is not the one its build checked', async () => {
    // A declaration that reads its environment: the build checked it with replicas 1.
    const bundle = await bundleOne('digest', 'shifty', 'export default { replicas: Number(process.env.SHIFTY_REPLICAS ?? 1) };\n');
    const checker = readdirSync(bundle).find((f) => /^check-.*\.mjs$/.test(f));
    expect(checker, 'the declaration checker is a chunk of its own').toBeDefined();
    expect(readFileSync(join(bundle, checker!), 'utf8').includes('Too small'), 'the checker chunk holds zod').toBe(true);
    const start = (env: NodeJS.ProcessEnv) => new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, [join(bundle, 'main.mjs')], { env: { ...process.env, PORT: '0', MODELFN_HOST: '127.0.0.1', ...env }, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      const read = (d: Buffer) => {
        output += d;
        if (output.includes('"msg":"listening"')) child.kill('SIGTERM');
      };
      child.stdout.on('data', read);
      child.stderr.on('data', read);
      child.once('exit', (code) => resolve({ code, output }));
    });
    // The same declaration starts without the checker's chunk: it is never loaded.
    renameSync(join(bundle, checker!), join(bundle, `${checker}.away`));
    const same = await start({});
    expect(same.output, same.output).toContain('"msg":"listening"');
    // A declaration that differs from the build's is checked (and refused) at start.
    const without = await start({ SHIFTY_REPLICAS: '0' });
    expect(without.code).not.toBe(0);
    expect(without.output).toContain(checker!);
    renameSync(join(bundle, `${checker}.away`), join(bundle, checker!));
    const changed = await start({ SHIFTY_REPLICAS: '0' });
    expect(changed.code).toBe(1);
    expect(changed.output.trim()).toMatch(/^modelfn: .*shifty\/function\.ts: replicas: too small/);
    expect((await start({ SHIFTY_REPLICAS: '2' })).output).toContain('"msg":"listening"');
  }, 60_000);
});

describe('generated files', () => {
  it('are up to date with functions/ (npm run build regenerates them)', async () => {
    const { functions, problems } = await discoverFunctions(join(ROOT, 'functions'), readConfig({}));
    expect(problems).toEqual([]);
    for (const [path, text] of Object.entries(generatedFiles(await describeFunctions(functions)))) {
      expect(readFileSync(join(ROOT, path), 'utf8'), `${path} is out of date: run npm run build`).toBe(text);
      expect(text.split('\n')[0]).toMatch(/^(# |<!-- )Generated from \S+ by modelfn build/);
    }
  });

  it("do not depend on the builder's environment: the same source gives the same files", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { MODELFN_BODY_LIMIT: '5mb', MODELFN_TIMEOUT_MS: '1234', MODELFN_IMAGE_TAG: 'elsewhere' });
    try {
      const log: string[] = [];
      const code = await runBuild({ functionsDir: join(ROOT, 'functions'), outDir: join(scratch, 'env-dist'), root: ROOT, images: false, check: true, log: (l) => log.push(l) });
      expect(log).toEqual([]);
      expect(code).toBe(0);
    } finally {
      for (const key of ['MODELFN_BODY_LIMIT', 'MODELFN_TIMEOUT_MS', 'MODELFN_IMAGE_TAG']) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    }
  });

  it('take limits and replicas from the declarations: nginx and the app agree', async () => {
    const { functions } = await discoverFunctions(join(ROOT, 'functions'), readConfig({}));
    const { 'nginx/nginx.conf': conf, 'docker-compose.yml': yml } = generatedFiles(await describeFunctions(functions));
    const compose = parse(yml) as { services: Record<string, any> };
    for (const fn of functions) {
      const block = conf.slice(conf.indexOf(`location ^~ ${fn.prefix}/ {`));
      expect(block).toMatch(new RegExp(`client_max_body_size ${fn.limits.bodySize};`));
      expect(block).toMatch(new RegExp(`proxy_read_timeout ${Math.ceil((fn.limits.timeoutMs + TIMEOUT_GRACE_MS) / 1000)}s;`));
      const service = compose.services[fn.name];
      expect(service.environment).toEqual({ MODELFN_BODY_LIMIT: String(fn.limits.bodySize), MODELFN_TIMEOUT_MS: String(fn.limits.timeoutMs), MODELFN_ACCESS_LOG: 'false', MODELFN_PEERS: `${fn.name}:8080` });
      expect(service.deploy.replicas).toBe(fn.replicas);
      expect(service).toMatchObject({ read_only: true, cap_drop: ['ALL'], security_opt: ['no-new-privileges:true'], user: '65532:65532', init: true });
      expect(service.healthcheck.test).toEqual(['CMD', '/usr/local/bin/node', '/app/healthcheck.mjs']);
      expect(compose.services.gateway.depends_on[fn.name]).toEqual({ condition: 'service_healthy' });
    }
    expect(compose.services.gateway.ports).toEqual(['${MODELFN_HOST:-127.0.0.1}:${MODELFN_PORT:-8080}:8080']);
    expect(conf).toContain('server_tokens off;');
  });

  it('add the activator for functions that scale, and hand their failed requests to it', () => {
    const config = readConfig({});
    const where = (name: string) => ({ dir: `/nowhere/${name}`, folderName: name });
    const sleepy = { ...resolveDeclaration({ scale: { min: 0, idleSeconds: 3, wake: 'unpause' } }, where('sleepy'), config), ownRoutes: [] };
    const awake = { ...resolveDeclaration({}, where('awake'), config), ownRoutes: [] };
    const files = generatedFiles([awake, sleepy]);
    const compose = parse(files['docker-compose.yml']) as { services: Record<string, any> };
    expect(compose.services.activator).toMatchObject({
      user: '65532:65532', group_add: ['${MODELFN_DOCKER_GID:-0}'], read_only: true, cap_drop: ['ALL'],
      security_opt: ['no-new-privileges:true'], volumes: ['/var/run/docker.sock:/var/run/docker.sock'], networks: ['functions'],
    });
    expect(compose.services.activator.ports).toBeUndefined();
    expect(JSON.parse(compose.services.activator.environment.MODELFN_SCALED_FUNCTIONS)).toEqual([
      { name: 'sleepy', prefix: '/sleepy', min: 0, max: 1, idleSeconds: 3, wake: 'unpause', concurrency: 32, timeoutMs: 30_000, bodySize: 10 * 1024 * 1024 },
    ]);
    // Only the activator gets the socket; only the scaled function a control server.
    for (const name of ['awake', 'sleepy', 'gateway']) expect(JSON.stringify(compose.services[name])).not.toContain('docker.sock');
    expect(compose.services.sleepy.environment).toMatchObject({ MODELFN_CONTROL_PORT: '9090', MODELFN_CONTROL_FROM: 'activator' });
    expect(compose.services.awake.environment.MODELFN_CONTROL_PORT).toBeUndefined();
    expect(compose.services.gateway.depends_on.activator).toEqual({ condition: 'service_healthy' });
    const conf = files['nginx/nginx.conf'];
    const block = (prefix: string) => conf.slice(conf.indexOf(`location ^~ ${prefix}/ {`), conf.indexOf('}', conf.indexOf(`location ^~ ${prefix}/ {`)));
    expect(block('/sleepy')).toContain('error_page 502 503 504 = @modelfn_activate;');
    expect(block('/sleepy')).toContain('proxy_connect_timeout 10ms;');
    expect(block('/awake')).toContain('error_page 502 503 =503 @modelfn_unavailable;');
    // The function is named by nginx in a header, never in a path the activator would parse.
    expect(conf).toContain('proxy_pass http://modelfn_activator;\n');
    expect(conf).toContain('proxy_set_header X-Modelfn-Function $modelfn_unit;');
    expect(conf).toContain('server activator:8080 resolve max_fails=0;');
    // Without a scaled function there is no activator at all.
    const plain = generatedFiles([awake]);
    expect(plain['docker-compose.yml']).not.toContain('activator');
    expect(plain['nginx/nginx.conf']).not.toContain('activat');
    // Swarm: the same activator, which scales the stack's services; a manager's, the socket's group its primary one.
    const stack = parse(files['deploy/swarm/stack.yml']) as { services: Record<string, any> };
    expect(stack.services.activator).toMatchObject({
      user: '65532:${MODELFN_DOCKER_GID:?set MODELFN_DOCKER_GID to the group of the engine socket}', read_only: true, cap_drop: ['ALL'], networks: ['functions'],
      volumes: [{ type: 'tmpfs', target: '/tmp' }, { type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock' }],
      environment: { MODELFN_ORCHESTRATOR: 'swarm', MODELFN_ACTIVATOR_FROM: 'gateway', MODELFN_SCALED_FUNCTIONS: compose.services.activator.environment.MODELFN_SCALED_FUNCTIONS },
      deploy: { replicas: 1, endpoint_mode: 'dnsrr', placement: { constraints: ['node.role == manager'] } },
    });
    expect(stack.services.activator.ports).toBeUndefined();
    for (const name of ['awake', 'sleepy', 'gateway']) expect(JSON.stringify(stack.services[name])).not.toContain('docker.sock');
    expect(stack.services.sleepy.environment).toMatchObject({ MODELFN_CONTROL_PORT: '9090', MODELFN_CONTROL_FROM: 'activator' });
    expect(stack.services.awake.environment.MODELFN_CONTROL_PORT).toBeUndefined();
    // Frozen with the activator's engine: on its node.
    expect(stack.services.sleepy.deploy.placement).toEqual({ constraints: ['node.role == manager'] });
    expect(stack.services.awake.deploy.placement).toBeUndefined();
    const swarmConf = files['deploy/swarm/nginx.conf'];
    expect(swarmConf).toContain('proxy_pass http://modelfn_activator;\n');
    expect(parse(plain['deploy/swarm/stack.yml']).services.activator).toBeUndefined();
    const image = gatewayNginxImage('nginx -t of a config with the activator');
    if (image) {
      nginxTest(conf, image);
      nginxTest(swarmConf, image);
    }
  });


  it('nginx.conf and the swarm gateway config pass nginx -t in the gateway\'s nginx', (ctx) => {
    const image = gatewayNginxImage('nginx -t of the generated configs');
    if (!image) return ctx.skip();
    for (const file of ['nginx/nginx.conf', 'deploy/swarm/nginx.conf']) {
      const result = spawnSync('docker', ['run', '--rm', '--network', 'none', '-v', `${join(ROOT, file)}:/etc/nginx/nginx.conf:ro`, image, 'nginx', '-t'], { encoding: 'utf8' });
      expect(result.status, `${file}: ${result.stderr}`).toBe(0);
      expect(result.stderr).toContain('test is successful');
    }
  });
});

/** nginx -t of a config in the gateway's own nginx image. */
function nginxTest(text: string, image: string): void {
  const conf = join(scratch, `nginx-${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(conf, text);
  const result = spawnSync('docker', ['run', '--rm', '--network', 'none', '-v', `${conf}:/etc/nginx/nginx.conf:ro`, image, 'nginx', '-t'], { encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  expect(result.stderr).toContain('test is successful');
}
