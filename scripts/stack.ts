/**
 * `npm run up` / `npm run down` / `npm run logs`: the whole stack with one command.
 */
import { runBuild } from '../build.ts';
import { discoverFunctions } from '../build/functions.ts';
import { composeRun, stackDown, stackUp } from '../build/stack.ts';
import { readConfig } from '../runtime/config.ts';

const command = process.argv[2];
const root = process.cwd();
const log = (line: string) => process.stdout.write(`${line}\n`);

try {
  if (command === 'up') {
    const code = await runBuild({ functionsDir: `${root}/functions`, outDir: `${root}/dist`, root, images: true, check: false, log });
    if (code !== 0) process.exit(code);
    const { functions } = await discoverFunctions(`${root}/functions`, readConfig());
    log('\nstarting the stack...');
    const url = await stackUp({ root }, functions.map((f) => f.name));
    log(`modelfn is up at ${url}/ (${functions.map((f) => `${url}${f.prefix}/`).join(', ')})`);
  } else if (command === 'down') {
    await stackDown({ root });
    log('modelfn is down: containers, networks and volumes removed');
  } else if (command === 'logs') {
    process.stdout.write(await composeRun({ root }, ['logs', '--no-color', '--tail', '200']));
  } else {
    process.stderr.write('usage: tsx scripts/stack.ts up|down|logs\n');
    process.exit(2);
  }
} catch (err) {
  process.stderr.write(`modelfn ${command}: ${(err as Error).message}\n`);
  process.exit(1);
}
