/**
 * The Engine API client against a server on a Unix socket that answers like the engine: the
 * paths and queries sent, the engine's error messages, the log stream's framing.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION, DockerError, demultiplex, dockerClient } from './docker.ts';

describe('the Docker Engine API client', () => {
  const dir = mkdtempSync(join(tmpdir(), 'modelfn-docker-'));
  const socket = join(dir, 'docker.sock');
  const seen: { method: string; url: string; body: string }[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    seen.push({ method: req.method!, url: req.url!, body });
    const path = req.url!.replace(`/${API_VERSION}`, '');
    const json = (status: number, value: unknown) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(value));
    if (req.url === '/version') return json(200, { ApiVersion: '1.50' });
    if (req.url === '/v1.50/services/p_iris') return json(200, { ID: 'svc1', Version: { Index: 7 }, Spec: { Name: 'p_iris', Mode: { Replicated: { Replicas: 1 } } } });
    if (req.url!.startsWith('/v1.50/services/svc1/update')) return json(200, { Warnings: [] });
    if (req.url!.startsWith('/v1.50/tasks')) return json(200, [{ ID: 't1', DesiredState: 'running', Status: { State: 'running' } }]);
    if (path.startsWith('/containers/json')) return json(200, [{ Id: 'abc', Names: ['/p-iris-1'], Labels: {}, State: 'exited', Status: 'Exited (0)' }]);
    if (path === '/containers/abc/start') return res.writeHead(304).end();
    if (path === '/containers/abc/pause') return json(409, { message: 'Container abc is not running' });
    if (path.startsWith('/containers/create')) return json(201, { Id: 'new', Warnings: [] });
    if (path.startsWith('/containers/abc/logs')) {
      const frame = (stream: number, text: string) => {
        const header = Buffer.alloc(8);
        header[0] = stream;
        header.writeUInt32BE(Buffer.byteLength(text), 4);
        return Buffer.concat([header, Buffer.from(text)]);
      };
      const [a, b] = [frame(1, 'listening\n'), frame(2, 'boom\n')];
      return res.writeHead(200).end(Buffer.concat([a, b]));
    }
    return json(404, { message: `No such container: ${path}` });
  });
  beforeAll(() => new Promise<void>((done) => server.listen(socket, done)));
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const docker = dockerClient(socket, 5000);

  it('lists containers with label filters encoded as the engine expects', async () => {
    const list = await docker.list({ label: ['com.docker.compose.project=p', 'com.docker.compose.service=iris'] }, { all: true });
    expect(list[0].Id).toBe('abc');
    const url = new URL(`http://docker${seen.at(-1)!.url}`);
    expect(url.pathname).toBe(`/${API_VERSION}/containers/json`);
    expect(url.searchParams.get('all')).toBe('true');
    expect(JSON.parse(url.searchParams.get('filters')!)).toEqual({ label: ['com.docker.compose.project=p', 'com.docker.compose.service=iris'] });
  });

  it('takes 304 (already started) as success, and throws the engine\'s message otherwise', async () => {
    await expect(docker.start('abc')).resolves.toBeUndefined();
    const err = await docker.pause('abc').catch((e) => e);
    expect(err).toBeInstanceOf(DockerError);
    expect(err.status).toBe(409);
    expect(err.message).toBe('POST /containers/abc/pause: 409 Container abc is not running');
    await expect(docker.inspect('zzz')).rejects.toThrow('404 No such container: /containers/zzz/json');
  });

  it('creates with a name and a JSON body, and reads logs without the stream framing', async () => {
    expect(await docker.create('p-iris-2', { Image: 'modelfn/iris:latest' })).toBe('new');
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: `/${API_VERSION}/containers/create?name=p-iris-2`, body: '{"Image":"modelfn/iris:latest"}' });
    expect(await docker.logs('abc', 5)).toBe('listening\nboom\n');
    expect(demultiplex(Buffer.from('plain text'))).toBe('plain text');
  });

  it('reads and updates Swarm services in the engine\'s own API version, sending the spec back with its version index', async () => {
    const service = await docker.service('p_iris');
    expect(service.Version.Index).toBe(7);
    await docker.updateService(service.ID, service.Version.Index, { ...service.Spec, Mode: { Replicated: { Replicas: 0 } } });
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/v1.50/services/svc1/update?version=7', body: '{"Name":"p_iris","Mode":{"Replicated":{"Replicas":0}}}' });
    expect((await docker.tasks({ service: ['svc1'], 'desired-state': ['running'] }))[0].ID).toBe('t1');
    expect(JSON.parse(new URL(`http://docker${seen.at(-1)!.url}`).searchParams.get('filters')!)).toEqual({ service: ['svc1'], 'desired-state': ['running'] });
    // The version was asked once.
    expect(seen.filter((s) => s.url === '/version')).toHaveLength(1);
  });
});
