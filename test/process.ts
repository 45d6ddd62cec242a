/**
 * A command run the way a person runs it in a shell, in a process group of its own so that it
 * and everything it starts (npm, tsx, node) are stopped together, by the group's id.
 */
import { spawn } from 'node:child_process';

export interface ShellProcess {
  pid: number;
  /** The last 20 000 characters it printed. */
  output(): string;
  /** Exit code once it has exited. */
  exited(): number | null | undefined;
  /** SIGTERM to its group, then SIGKILL if it is still there after 15 s. */
  stop(): Promise<void>;
}

/** The environment without the variables npm sets for its own scripts (a person's shell has none). */
export function shellEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD'));
  return { ...env, ...extra };
}

/**
 * Runs `command` with bash in `cwd`.
 *
 * @example const server = runInShell('npm start', { cwd: ROOT, env: shellEnv({ PORT: '8123' }) });
 */
export function runInShell(command: string, options: { cwd: string; env: NodeJS.ProcessEnv }): ShellProcess {
  const child = spawn('bash', ['-c', command], { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let code: number | null | undefined;
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exit = new Promise<void>((done) => child.on('exit', (c) => {
    code = c;
    done();
  }));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // The group is gone already.
    }
  };
  return {
    pid: child.pid!,
    output: () => output,
    exited: () => code,
    async stop() {
      if (code !== undefined) return signal('SIGKILL');
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), 15_000);
      await exit;
      clearTimeout(timer);
      // Whatever is left of the group (a grandchild that ignored SIGTERM) goes too.
      signal('SIGKILL');
    },
  };
}

/** Polls until every named function is ready at the gateway, failing early if the process exits. */
export async function waitForFunctions(url: string, names: readonly string[], proc: ShellProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (proc.exited() !== undefined) throw new Error(`the command exited (${proc.exited()}) before serving:\n${proc.output().slice(-4000)}`);
    try {
      const states = await Promise.all(names.map(async (name) => (await fetch(`${url}/v2/models/${name}/ready`, { signal: AbortSignal.timeout(3000) })).status));
      if (states.every((s) => s === 200)) return;
      last = `readiness ${states.join(', ')}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${names.join(', ')} at ${url} (${last}):\n${proc.output().slice(-4000)}`);
}
