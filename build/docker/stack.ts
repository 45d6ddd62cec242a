/**
 * `npm run up` / `npm run down` / `npm run logs` (and `modelfn up|down|logs`): the whole stack
 * with one command.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { runBuild } from '../build.ts';
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
}

/** Runs one stack command; resolves to the exit code, throws with a message when the engine fails. */
export async function runStack(command: StackCommand, options: RunStackOptions): Promise<number> {
  const { root, log } = options;
  if (command === 'up') {
    const code = await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: true, check: false, log });
    if (code !== 0) return code;
    const { functions } = await discoverFunctions(join(root, 'functions'), readConfig());
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

const isMain = process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename);
if (isMain) {
  const command = process.argv[2];
  if (command !== 'up' && command !== 'down' && command !== 'logs') {
    process.stderr.write('usage: tsx build/docker/stack.ts up|down|logs\n');
    process.exit(2);
  }
  try {
    process.exitCode = await runStack(command, { root: process.cwd(), log: (line) => process.stdout.write(`${line}\n`) });
  } catch (err) {
    process.stderr.write(`modelfn ${command}: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
