/**
 * The compose stack with one command each, for `modelfn up|down|logs` (npm run up / down / logs):
 * up builds everything then starts the stack and waits, down removes it, logs prints its logs.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { runBuild } from '../../build.ts';
import { discoverFunctions } from '../functions.ts';
import { compose, composeRun, projectName, stackDown, stackUp } from './compose.ts';
import { readConfig } from '../../runtime/core/config.ts';

export type StackCommand = 'up' | 'down' | 'logs';

export interface RunStackOptions {
  /** The project folder: functions/, dist/ and docker-compose.yml. */
  root: string;
  log: (line: string) => void;
  /** `logs`: keep following the logs until interrupted. */
  follow?: boolean;
  /** `up`: the function images' architecture (default this machine's). */
  arch?: string;
}

/** Runs one stack command; resolves to the exit code, throws with a message when the engine fails. */
export async function runStack(command: StackCommand, options: RunStackOptions): Promise<number> {
  const { root, log } = options;
  if (command === 'up') {
    const code = await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: true, arch: options.arch, check: false, log, trafficProject: projectName({ root }) });
    if (code !== 0) return code;
    const { functions } = await discoverFunctions(join(root, 'functions'), readConfig({}));
    log('\nstarting the stack...');
    const url = await stackUp({ root }, functions.map((f) => f.name));
    log(`modelfn is up at ${url}/ (${functions.map((f) => `${url}${f.prefix}/`).join(', ')})`);
  } else if (command === 'down') {
    await stackDown({ root });
    log('modelfn is down: containers, networks and volumes removed');
  } else if (options.follow) {
    const [bin, ...pre] = compose();
    const child = spawn(bin, [...pre, '-p', projectName({ root }), '-f', join(root, 'docker-compose.yml'), 'logs', '--no-color', '--follow', '--tail', '200'], { cwd: root, stdio: 'inherit' });
    return new Promise((done) => child.on('exit', (code) => done(code ?? 1)));
  } else {
    process.stdout.write(await composeRun({ root }, ['logs', '--no-color', '--tail', '200']));
  }
  return 0;
}
