/**
 * The `modelfn` command, run as people run it: a subprocess, its exit code, its output.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedServer } from '../runtime/gateway/embedded.ts';
import { ROOT, errorOf, memoryLogger, postJson, testConfig } from '../runtime/testing/index.ts';
import { freePort } from './docker.ts';
import { runInShell, shellEnv } from './process.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelfn-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Run { code: number; stdout: string; stderr: string }

/** Runs a command to its end; never rejects. */
function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: options.cwd ?? ROOT, env: { ...process.env, ...options.env }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const modelfn = (args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  run(process.execPath, [join(options.cwd ?? ROOT, 'bin/modelfn.mjs'), ...args], options);

/** A failure's message: exactly one line on stderr, naming the command. */
function oneLine(result: Run, command: string): string {
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0].startsWith(`${command}: `)).toBe(true);
  return lines[0];
}

/** Every command; each npm script is an alias of one of them. */
const COMMANDS = ['new', 'list', 'start', 'dev', 'serve', 'invoke', 'build', 'up', 'down', 'logs', 'traffic', 'rollout', 'deploy', 'undeploy'];

describe('modelfn: help, exit codes and messages', () => {
  it('is what `npx modelfn` runs, and the npm scripts are aliases of its commands', async () => {
    const npx = await run('npx', ['modelfn', '--help']);
    expect(npx.code, npx.stderr).toBe(0);
    for (const name of COMMANDS) expect(npx.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const aliases = { serve: 'serve', start: 'start', dev: 'dev', build: 'build', up: 'up', down: 'down', logs: 'logs', 'deploy:swarm': 'deploy', 'undeploy:swarm': 'undeploy' };
    // `exec`: npm's shell becomes node, so npm's SIGTERM reaches the command (test/start.test.ts).
    for (const [script, command] of Object.entries(aliases)) expect(scripts[script]).toBe(`exec node bin/modelfn.mjs ${command}`);
  });

  it('prints its help with every command, and each command its own', async () => {
    const help = await modelfn(['--help']);
    expect(help.code).toBe(0);
    for (const name of COMMANDS) expect(help.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    const helps = await Promise.all(COMMANDS.map((name) => modelfn([name, '--help'])));
    for (const [i, name] of COMMANDS.entries()) {
      expect(helps[i].code, name).toBe(0);
      expect(helps[i].stdout.startsWith(`usage: modelfn ${name}`)).toBe(true);
      expect(helps[i].stderr).toBe('');
    }
  });

  it('names in its help the environment each stack command reads', async () => {
    const [up, down, logs, deploy, undeploy] = await Promise.all(['up', 'down', 'logs', 'deploy', 'undeploy'].map((name) => modelfn([name, '--help'])));
    for (const help of [up, down]) expect(help.stdout).toMatch(/MODELFN_PROJECT[\s\S]*MODELFN_IMAGE_TAG/);
    expect(up.stdout).toMatch(/MODELFN_PORT/);
    expect(logs.stdout).toMatch(/MODELFN_PROJECT/);
    for (const help of [deploy, undeploy]) expect(help.stdout).toMatch(/MODELFN_STACK/);
    expect(deploy.stdout).toMatch(/MODELFN_IMAGE_TAG/);
  });

  it('exits 2 with one line on a usage error', async () => {
    const [unknown, option, extra, missing] = await Promise.all([
      modelfn(['serve-everything']),
      modelfn(['list', '--colour']),
      modelfn(['list', 'iris']),
      modelfn(['invoke']),
    ]);
    for (const result of [unknown, option, extra, missing]) expect(result.code).toBe(2);
    expect(oneLine(unknown, 'modelfn')).toBe("modelfn: unknown command 'serve-everything'; commands: new, list, start, dev, serve, invoke, build, up, down, logs, traffic, rollout, deploy, undeploy (see modelfn --help)");
    expect(oneLine(option, 'modelfn list')).toBe("modelfn list: Unknown option '--colour' (see modelfn list --help)");
    expect(oneLine(extra, 'modelfn list')).toBe("modelfn list: unexpected argument 'iris' (see modelfn list --help)");
    expect(oneLine(missing, 'modelfn invoke')).toBe('modelfn invoke: missing argument (see modelfn invoke --help)');
  });

  it('modelfn traffic: refuses a bad invocation (2), or a function that is not there or has one version (1), in one line', async () => {
    const [missing, window, both, nope, single] = await Promise.all([
      modelfn(['traffic']),
      modelfn(['traffic', 'iris', '--window', '0']),
      modelfn(['traffic', 'iris', '1=100', '--window', '5']),
      modelfn(['traffic', 'nope', '1=100']),
      modelfn(['traffic', 'iris', '1=100']),
    ]);
    expect([missing.code, window.code, both.code, nope.code, single.code]).toEqual([2, 2, 2, 1, 1]);
    expect(oneLine(missing, 'modelfn traffic')).toBe('modelfn traffic: missing argument (see modelfn traffic --help)');
    expect(oneLine(window, 'modelfn traffic')).toBe('modelfn traffic: --window 0: a number of seconds from 1 to 600 (see modelfn traffic --help)');
    expect(oneLine(both, 'modelfn traffic')).toBe('modelfn traffic: --window: only when showing the split (no <version>=<percent>) (see modelfn traffic --help)');
    expect(oneLine(nope, 'modelfn traffic')).toMatch(/^modelfn traffic: no function 'nope' \(functions: .*iris.*\)$/);
    expect(oneLine(single, 'modelfn traffic')).toBe('modelfn traffic: iris has one version (1); add a version folder (functions/iris/<N>/model.onnx) to split its traffic');
  });

  it('modelfn rollout: refuses a bad invocation or flag (2), or a function that is not there or has one version (1), in one line', async () => {
    const [missing, steps, wait, nope, single] = await Promise.all([
      modelfn(['rollout', 'iris']),
      modelfn(['rollout', 'iris', '2', '--steps', '50,10']),
      modelfn(['rollout', 'iris', '2', '--max-wait', 'long']),
      modelfn(['rollout', 'nope', '2']),
      modelfn(['rollout', 'iris', '2']),
    ]);
    expect([missing.code, steps.code, wait.code, nope.code, single.code]).toEqual([2, 2, 2, 1, 1]);
    expect(oneLine(missing, 'modelfn rollout')).toBe('modelfn rollout: missing argument (see modelfn rollout --help)');
    expect(oneLine(steps, 'modelfn rollout')).toBe('modelfn rollout: --steps 50,10: percents of the new version, increasing, ending at 100, e.g. 10,50,100 (see modelfn rollout --help)');
    expect(oneLine(wait, 'modelfn rollout')).toBe('modelfn rollout: --max-wait long: seconds from 0 to 86400 (see modelfn rollout --help)');
    expect(oneLine(nope, 'modelfn rollout')).toMatch(/^modelfn rollout: no function 'nope' \(functions: .*iris.*\)$/);
    expect(oneLine(single, 'modelfn rollout')).toBe('modelfn rollout: iris has one version (1); add a version folder (functions/iris/<N>/model.onnx) to roll a new one out');
  });
});

describe('modelfn list', () => {
  it("shows each function's prefix, replicas, and model inputs and outputs with datatypes and shapes", async () => {
    const result = await modelfn(['list']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^FUNCTION\s+PREFIX\s+REPLICAS\s+INPUTS\s+OUTPUTS$/);
    expect(lines).toContainEqual(expect.stringMatching(/^iris\s+\/iris\s+1\s+input FP32 \[-1, 4\]\s+probabilities FP32 \[-1, 3\]$/));
    expect(lines).toContainEqual(expect.stringMatching(/^\s+label INT64 \[-1\]$/));
    expect(lines).toContainEqual(expect.stringMatching(/^\s+sr INT64 \[\]$/));
    const json = JSON.parse((await modelfn(['list', '--json'])).stdout) as { functions: { name: string; inputs: unknown[] }[] };
    expect(json.functions.map((f) => f.name)).toEqual(['digits', 'iris', 'vad']);
    expect(json.functions[2].inputs).toEqual([
      { name: 'input', datatype: 'FP32', shape: [-1, -1] },
      { name: 'state', datatype: 'FP32', shape: [2, -1, 128] },
      { name: 'sr', datatype: 'INT64', shape: [] },
    ]);
  });

  it('lists the functions that load and exits 1 naming the one that does not', async () => {
    const dir = join(scratch, 'list');
    cpSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'good/model.onnx'));
    mkdirSync(join(dir, 'broken'));
    writeFileSync(join(dir, 'broken/model.onnx'), 'not a model');
    const result = await modelfn(['list', '--functions', dir]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^broken\s+-\s+-\s+cannot load \(see below\)$/m);
    expect(result.stdout).toMatch(/^good\s+\/good\s+1\s+input FP32 \[-1, 4\]/m);
    // The error sits on a line of its own under the table, which stays narrow.
    expect(result.stdout).toMatch(/^broken cannot load:\n  .*broken\/model.onnx: not a valid ONNX model/m);
    const tableLines = result.stdout.slice(0, result.stdout.indexOf('\n\n')).split('\n');
    expect(Math.max(...tableLines.map((l) => l.length))).toBeLessThanOrEqual(80);
  });
});

describe('a syntax error in function.ts', () => {
  it('is reported with its line and column by modelfn list and npm run serve', async () => {
    const dir = join(scratch, 'syntax');
    mkdirSync(join(dir, 'typo'), { recursive: true });
    cpSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'typo/model.onnx'));
    writeFileSync(join(dir, 'package.json'), '{"type": "module"}\n');
    writeFileSync(join(dir, 'typo/function.ts'), 'export default {\n');
    const [listed, served] = await Promise.all([
      modelfn(['list', '--functions', dir]),
      run('npm', ['run', '--silent', 'serve', '--', join(dir, 'typo')], { env: shellEnv({ PORT: '0' }) }),
    ]);
    expect(listed.code).toBe(1);
    expect(listed.stdout).toMatch(/^typo cannot load:\n  .*typo\/function\.ts:2:0: cannot be loaded: Expected [^\n]* but found end of file$/m);
    expect(served.code).toBe(1);
    expect(served.stderr).toMatch(/typo\/function\.ts:2:0: cannot be loaded: Expected .* but found end of file/);
  });
});

describe('modelfn build', () => {
  it('--check exits 0 when the generated files are current, and 1 naming each stale one', async () => {
    const dir = join(scratch, 'build');
    cpSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'other/model.onnx'));
    const [current, stale] = await Promise.all([modelfn(['build', '--check']), modelfn(['build', '--check', '--functions', dir])]);
    expect(current.code, current.stdout + current.stderr).toBe(0);
    expect(stale.code).toBe(1);
    expect(stale.stdout).toContain('modelfn build: nginx/nginx.conf is out of date with functions/; run npm run build');
  });

  it('--arch names the architectures it builds images for, and refuses another before building anything', async () => {
    const help = await modelfn(['build', '--help']);
    expect(help.stdout).toMatch(/--arch A\s+the images' architecture: x64 or arm64/);
    const out = join(scratch, 'arch-out');
    const refused = await modelfn(['build', '--images', '--arch', 'sparc', '--out', out, '--root', out]);
    expect(refused.code).toBe(1);
    expect(refused.stdout.trim()).toBe('modelfn build: --arch sparc: no images for that architecture (x64 or arm64)');
    expect(existsSync(out)).toBe(false);
  });
});

describe('modelfn start', () => {
  it('refuses functions whose names or prefixes collide, naming every problem, and exits 1', async () => {
    const dir = join(scratch, 'collide');
    for (const name of ['alpha', 'beta', 'gamma']) cpSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, name, 'model.onnx'));
    writeFileSync(join(dir, 'alpha/function.ts'), "export default { prefix: '/shared' };\n");
    writeFileSync(join(dir, 'beta/function.ts'), "export default { prefix: '/shared' };\n");
    writeFileSync(join(dir, 'gamma/function.ts'), "export default { prefix: '/docs/gamma' };\n");
    const result = await modelfn(['start', '--functions', dir, '--port', '0']);
    expect(result.code, result.stderr).toBe(1);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe('modelfn start: 2 problems:');
    expect(lines[1]).toMatch(/^  - .*beta\/function.ts: prefix '\/shared' is also the prefix of .*alpha\/function.ts$/);
    expect(lines[2]).toMatch(/^  - .*gamma\/function.ts: prefix '\/docs\/gamma' is reserved for the gateway \(\/docs\)$/);
    expect(result.stderr).not.toContain('serving');
  });


  it('serves every function on one port, naming the one that fails to load, which answers 503 JSON', async () => {
    const dir = join(scratch, 'start');
    cpSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'good/model.onnx'));
    mkdirSync(join(dir, 'corrupt'));
    writeFileSync(join(dir, 'corrupt/model.onnx'), 'not a model');
    const server = runInShell(`node bin/modelfn.mjs start --functions ${dir} --port 0`, { cwd: ROOT, env: shellEnv({ MODELFN_ACCESS_LOG: 'false' }) });
    try {
      let url: string | undefined;
      for (let i = 0; i < 300 && !url && server.exited() === undefined; i++) {
        url = /serving 2 functions at (http:\/\/[\d.:]+)\//.exec(server.output())?.[1];
        if (!url) await new Promise((r) => setTimeout(r, 100));
      }
      expect(url, server.output()).toBeDefined();
      expect(server.output()).toMatch(/^modelfn: corrupt failed to load and answers 503: .*corrupt\/model.onnx: not a valid ONNX model/m);
      expect((await errorOf(await fetch(`${url}/corrupt/predict`, postJson({ instances: [[1]] })))).status).toBe(503);
      expect((await fetch(`${url}/good/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }))).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

describe('modelfn new', () => {
  // A project of its own, as a user's clone would be: the scaffold lands in its functions/.
  const project = join(scratch, 'project');
  beforeAll(() => {
    for (const path of ['bin', 'cli', 'runtime', 'build.ts', 'builder', 'package.json', 'tsconfig.json', 'vitest.config.ts']) {
      cpSync(join(ROOT, path), join(project, path), { recursive: true, filter: (src) => !src.includes('/runtime/testing/fixtures') });
    }
    symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'));
    mkdirSync(join(project, 'functions'));
  });

  it('scaffolds a function whose own test passes at once and which typechecks', async () => {
    const starter = await modelfn(['new', 'hello'], { cwd: project });
    expect(starter.code, starter.stderr).toBe(0);
    expect(starter.stdout).toMatch(/^created functions\/hello\/: model.onnx, function.ts, hello.test.ts, README.md$/m);
    const own = await modelfn(['new', 'from-iris', '--model', join(ROOT, 'functions/iris/model.onnx')], { cwd: project });
    expect(own.code, own.stderr).toBe(0);
    for (const file of ['model.onnx', 'function.ts', 'hello.test.ts', 'README.md']) expect(existsSync(join(project, 'functions/hello', file))).toBe(true);
    expect(readFileSync(join(project, 'functions/from-iris/model.onnx'))).toEqual(readFileSync(join(ROOT, 'functions/iris/model.onnx')));
    expect(readFileSync(join(project, 'functions/from-iris/function.ts'), 'utf8')).toContain("example: { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] }] },");
    expect(readFileSync(join(project, 'functions/from-iris/README.md'), 'utf8')).toContain('inputs input FP32 [-1, 4]; outputs probabilities FP32 [-1, 3], label INT64 [-1]');

    const vitest = await run(join(ROOT, 'node_modules/.bin/vitest'), ['run', 'functions/'], { cwd: project, env: { CI: 'true' } });
    expect(vitest.code, vitest.stdout + vitest.stderr).toBe(0);
    expect(vitest.stdout).toMatch(/Tests\s+.*6 passed/);
    writeFileSync(join(project, 'tsconfig.scaffold.json'), JSON.stringify({ extends: './tsconfig.json', include: ['functions'] }));
    const tsc = await run(join(ROOT, 'node_modules/.bin/tsc'), ['--noEmit', '-p', 'tsconfig.scaffold.json'], { cwd: project });
    expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);
  });

  it('prints the address npm start will serve it at: PORT as the shell has it, else 8080, and how to use another', async () => {
    const [plain, port] = await Promise.all([modelfn(['new', 'plain'], { cwd: project, env: { PORT: '' } }), modelfn(['new', 'elsewhere'], { cwd: project, env: { PORT: '18099' } })]);
    expect(plain.stdout).toMatch(/^ {2}npm start +# serves it at http:\/\/localhost:8080\/plain\/ /m);
    expect(plain.stdout).toMatch(/^another port: PORT=8081 npm start, then npx modelfn invoke plain --url http:\/\/127.0.0.1:8081$/m);
    expect(port.stdout).toMatch(/^ {2}npm start +# serves it at http:\/\/localhost:18099\/elsewhere\/ /m);
    expect(port.stdout).toMatch(/^ {2}npx modelfn invoke elsewhere +# sends its example request to http:\/\/127.0.0.1:18099$/m);
  });

  it('refuses a bad name (2), a taken name (1), and a model that is missing or does not load (1), writing nothing', async () => {
    writeFileSync(join(scratch, 'garbage.onnx'), 'garbage');
    const [bad, taken, missing, corrupt] = await Promise.all([
      modelfn(['new', 'Hello_World'], { cwd: project }),
      modelfn(['new', 'taken'], { cwd: project }).then(() => modelfn(['new', 'taken'], { cwd: project })),
      modelfn(['new', 'missing', '--model', join(scratch, 'nowhere.onnx')], { cwd: project }),
      modelfn(['new', 'corrupt', '--model', join(scratch, 'garbage.onnx')], { cwd: project }),
    ]);
    expect(bad.code).toBe(2);
    expect(oneLine(bad, 'modelfn new')).toContain("'Hello_World' is not a function name");
    expect(taken.code).toBe(1);
    expect(oneLine(taken, 'modelfn new')).toBe('modelfn new: functions/taken already exists');
    expect(missing.code).toBe(1);
    expect(oneLine(missing, 'modelfn new')).toMatch(/nowhere.onnx: no such file$/);
    expect(corrupt.code).toBe(1);
    expect(oneLine(corrupt, 'modelfn new')).toMatch(/garbage.onnx: not a valid ONNX model/);
    for (const name of ['Hello_World', 'missing', 'corrupt']) expect(existsSync(join(project, 'functions', name))).toBe(false);
  });
});

describe('modelfn invoke', () => {
  let server: EmbeddedServer;
  const invoke = (args: string[]) => modelfn(['invoke', ...args, '--url', server.url]);
  beforeAll(async () => {
    server = await startEmbedded({ functionsDir: join(ROOT, 'functions'), config: testConfig({ PORT: '0' }), logger: memoryLogger() });
  });
  afterAll(() => server.shutdown());

  it('sends "instances" to /predict, "inputs" to infer, nothing as the example, and a file to the file route', async () => {
    writeFileSync(join(scratch, 'request.json'), JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [6.7, 3.0, 5.2, 2.3] }] }));
    const [predict, infer, example, wav, species] = await Promise.all([
      invoke(['iris', '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}']),
      invoke(['iris', `@${join(scratch, 'request.json')}`]),
      invoke(['iris']),
      invoke(['vad', '@functions/vad/test/speech.wav']),
      invoke(['iris', '--path', '/species', '{"flowers": [[6.7, 3.0, 5.2, 2.3]]}']),
    ]);
    for (const result of [predict, infer, example, wav, species]) expect(result.code, result.stderr).toBe(0);
    expect(predict.stderr).toBe(`POST ${server.url}/iris/predict -> 200 OK (${/\((\d+) ms\)/.exec(predict.stderr)![1]} ms)\n`);
    expect(JSON.parse(predict.stdout).predictions[0].label).toBe(0);
    // Printed to be read: indented, short lists kept on one line.
    expect(predict.stdout).toMatch(/^\{\n {2}"predictions": \[/);
    expect(predict.stdout).toMatch(/"probabilities": \[[\d., e-]+\]/);
    expect(infer.stderr).toMatch(`/v2/models/iris/infer -> 200 OK`);
    expect(JSON.parse(infer.stdout).outputs.find((o: { name: string }) => o.name === 'label').data).toEqual([2]);
    expect(JSON.parse(example.stdout).outputs.find((o: { name: string }) => o.name === 'label').data).toEqual([0, 2]);
    expect(wav.stderr).toMatch(`/vad/segments -> 200 OK`);
    expect(JSON.parse(wav.stdout).segments).toHaveLength(2);
    expect(JSON.parse(species.stdout).predictions[0].species).toBe('virginica');
  });

  it('without --url, calls the port npm start reads (PORT), so a server started with PORT=N is found as modelfn new says', async () => {
    const port = new URL(server.url).port;
    const result = await modelfn(['invoke', 'iris'], { env: { PORT: port, MODELFN_URL: '' } });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(`POST http://127.0.0.1:${port}/v2/models/iris/infer -> 200 OK`);
  });

  it("exits 1 with the function's one-line error, or when nothing answers or nothing fits", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const [refused, unknown, nofile, nothing] = await Promise.all([
      invoke(['iris', '{"instances": [[1, 2]]}']),
      invoke(['tulip', '{"instances": []}']),
      invoke(['iris', '@functions/vad/test/speech.wav']),
      modelfn(['invoke', 'iris', '--url', closed]),
    ]);
    for (const result of [refused, unknown, nofile, nothing]) expect(result.code).toBe(1);
    expect(refused.stderr.split('\n')[1]).toMatch(/^modelfn invoke: 400 Bad Request: instances \(input 'input'\): .*the model expects \[-1,4\]/);
    expect(refused.stdout).toBe('');
    expect(oneLine(unknown, 'modelfn invoke')).toBe(`modelfn invoke: no function 'tulip' at ${server.url} (it has: digits, iris, vad)`);
    expect(oneLine(nofile, 'modelfn invoke')).toBe("modelfn invoke: function 'iris' documents no route taking a file; pass --path ROUTE");
    expect(oneLine(nothing, 'modelfn invoke')).toMatch(`modelfn invoke: nothing answers at ${closed}`);
  });

  it('exits 2 on input that is not JSON, or JSON that names no route', async () => {
    const [notJson, noRoute] = await Promise.all([invoke(['iris', '{"instances": [']), invoke(['iris', '{"rows": []}'])]);
    expect(notJson.code).toBe(2);
    expect(oneLine(notJson, 'modelfn invoke')).toMatch(/^modelfn invoke: the input is not JSON/);
    expect(noRoute.code).toBe(2);
    expect(oneLine(noRoute, 'modelfn invoke')).toContain('JSON input needs "instances"');
  });
});
