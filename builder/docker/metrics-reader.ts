/**
 * The Prometheus counters of a compose service's containers, read again and again at little cost
 * to them: one Node process per container (`docker exec -i`, the image has no shell and no curl)
 * stays up and fetches the server's /metrics each time a line arrives on its stdin.
 *
 * Why not `docker exec node -e fetch(...)` per sample, as `modelfn traffic` does for its one
 * window: starting Node inside the container competes for CPU with the server just before a
 * window closes. In a rollout step the new version answers a few hundred requests, so the few it
 * slows are its p99: in seven runs of test/e2e/rollout.test.ts that way, a good version's first
 * step twice measured 41 and 57 ms against the stable one's 9 ms (5 ms iris); two runs with this
 * reader, under the same load, 8 and 13 ms against 5 ms.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { containers, sampleOf, sumSamples, type Sample } from './traffic.ts';

/** What the process inside the container runs: each line in, one exposition out, then the end marker. */
const READER = [
  "const lines = require('node:readline').createInterface({ input: process.stdin });",
  "lines.on('line', () => fetch('http://127.0.0.1:8080/metrics').then((r) => r.text())",
  "  .then((t) => process.stdout.write(t + '\\n#modelfn-end\\n'), (e) => process.stdout.write('#modelfn-error ' + e.message + '\\n#modelfn-end\\n')));",
].join('\n');
const END = '\n#modelfn-end\n';
const READ_TIMEOUT_MS = 15_000;

/** One container's reader. */
class ContainerReader {
  private readonly child: ChildProcessWithoutNullStreams;
  private output = '';
  private exited?: string;
  private waiting?: { resolve: (text: string) => void; reject: (err: Error) => void };

  constructor(private readonly container: string) {
    this.child = spawn('docker', ['exec', '-i', container, '/usr/local/bin/node', '-e', READER]);
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      this.output += chunk;
      const end = this.output.indexOf(END);
      if (end < 0 || !this.waiting) return;
      const text = this.output.slice(0, end);
      this.output = this.output.slice(end + END.length);
      const { resolve, reject } = this.waiting;
      this.waiting = undefined;
      if (text.startsWith('#modelfn-error ')) reject(new Error(`the metrics of container ${container.slice(0, 12)}: ${text.slice(15)}`));
      else resolve(text);
    });
    let stderr = '';
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    this.child.on('close', (code) => {
      this.exited = `reading the metrics of container ${container.slice(0, 12)} stopped (docker exec exited ${code}${stderr.trim() ? `: ${stderr.trim().split('\n')[0]}` : ''})`;
      this.waiting?.reject(new Error(this.exited));
      this.waiting = undefined;
    });
    this.child.on('error', (err) => this.waiting?.reject(err));
  }

  read(): Promise<Sample> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`the metrics of container ${this.container.slice(0, 12)} did not come within ${READ_TIMEOUT_MS / 1000} s`));
      }, READ_TIMEOUT_MS);
      this.waiting = {
        resolve: (text) => (clearTimeout(timer), resolve(text)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
      this.child.stdin.write('\n');
    }).then(sampleOf);
  }

  close(): void {
    this.child.stdin.end();
    // A reader stuck in a fetch ends with its exec.
    setTimeout(() => this.child.kill(), 2000).unref();
  }
}

/**
 * The readers of a service's running containers: `sample()` adds their counters, `close()` ends them.
 *
 * @example const reader = await serviceReader('modelfn', 'iris-v2'); const before = await reader.sample(); reader.close();
 */
export async function serviceReader(project: string, service: string): Promise<{ sample: () => Promise<Sample>; close: () => void }> {
  const readers = (await containers('compose', project, service)).map((c) => new ContainerReader(c));
  return {
    sample: async () => sumSamples(await Promise.all(readers.map((r) => r.read()))),
    close: () => readers.forEach((r) => r.close()),
  };
}
