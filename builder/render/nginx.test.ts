// The nginx renderer alone: functions and options in, nginx.conf text out.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveDeclaration } from '../../runtime/function/check.ts';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import { freePort, gatewayNginxImage } from '../../test/docker.ts';
import { startNginx } from '../../test/nginx.ts';
import { FUNCTION_KEEPALIVE_TIMEOUT_MS } from '../../runtime/core/config.ts';
import { GATEWAY_BODIES, GATEWAY_IN_FLIGHT_PER_REPLICA, TIMEOUT_GRACE_MS, UPSTREAM_KEEPALIVE_TIMEOUT_MS } from '../policy.ts';
import { inFlightOf, nginxConfig } from './nginx.ts';

const config = { bodyLimit: 1024 * 1024, timeoutMs: 30_000 };
const declare = (folderName: string, declaration: object) => resolveDeclaration(declaration, { dir: `/nowhere/${folderName}`, folderName }, config);
const functions = [
  declare('alpha', { limits: { bodySize: '2mb', timeoutMs: 4500 } }),
  declare('beta-two', { prefix: '/b', rateLimit: { requestsPerSecond: 0.5, burst: 3 } }),
];
const scratch = mkdtempSync(join(tmpdir(), 'modelfn-nginx-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `nginx -t` on a config, in the gateway's nginx image; undefined when that cannot run outside CI. */
function nginxTest(conf: string): { status: number | null; output: string } | undefined {
  const image = gatewayNginxImage('nginx -t of rendered configs');
  if (!image) return undefined;
  const file = join(scratch, `nginx-${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(file, conf);
  const result = spawnSync('docker', ['run', '--rm', '--network', 'none', '-v', `${file}:/etc/nginx/nginx.conf:ro`, image, 'nginx', '-t'], { encoding: 'utf8' });
  return { status: result.status, output: result.stderr };
}

describe('nginxConfig', () => {
  it("sets each function's body limit and timeouts (its own plus the grace) on its locations", () => {
    const conf = nginxConfig(functions, { mode: 'dns' });
    const alpha = conf.slice(conf.indexOf('location ^~ /alpha/ {'));
    expect(alpha).toMatch(/^[^}]*client_max_body_size 2097152;/);
    expect(alpha).toMatch(new RegExp(`^[^}]*proxy_read_timeout ${Math.ceil((4500 + TIMEOUT_GRACE_MS) / 1000)}s;`));
    expect(conf).toContain('location = /v2/models/beta-two {');
  });

  it('limits request rates per client with a zone per function, in requests per minute below one a second', () => {
    const conf = nginxConfig(functions, { mode: 'dns' });
    expect(conf).toContain('limit_req_zone $binary_remote_addr zone=modelfn_beta_two:10m rate=30r/m;');
    expect(conf).toContain('limit_req zone=modelfn_beta_two burst=3 nodelay;');
    expect(conf).not.toContain('zone=modelfn_alpha');
  });

  it('re-resolves replicas while running in dns mode, for as long as the options say, keeping connections to them', () => {
    const compose = nginxConfig(functions, { mode: 'dns' });
    expect(compose).toContain('resolver 127.0.0.11 valid=5s ipv6=off;');
    expect(compose).toContain('# Discovery: dns\n');
    const other = nginxConfig(functions, { mode: 'dns', dnsValidSeconds: 1, discoveryNote: 'for a test', resolver: '10.0.0.2' });
    expect(other).toContain('resolver 10.0.0.2 valid=1s ipv6=off;');
    expect(other).toContain('# Discovery: dns, for a test\n');
    expect(other).toContain('upstream modelfn_alpha {\n        zone modelfn_alpha_upstream 64k;\n        server alpha:8080 resolve max_fails=0;\n        keepalive 64;\n        keepalive_timeout 60s;\n    }');
    expect(other).toContain('proxy_pass http://modelfn_alpha;');
    expect(other).toMatch(/proxy_http_version 1\.1;\n\s*proxy_set_header Connection "";/);
    // A request that met a connection the function was closing goes to another connection.
    expect(other).toContain('proxy_next_upstream error timeout http_502 non_idempotent;');
  });

  it('closes idle connections to a function before the function would', () => {
    expect(UPSTREAM_KEEPALIVE_TIMEOUT_MS).toBeLessThan(FUNCTION_KEEPALIVE_TIMEOUT_MS);
    expect(nginxConfig(functions, { mode: 'dns' })).toContain(`keepalive_timeout ${UPSTREAM_KEEPALIVE_TIMEOUT_MS / 1000}s;`);
  });

  it('keeps a keepalive pool per function in vip mode, and no resolver', () => {
    const conf = nginxConfig(functions, { mode: 'vip', functionPort: 9000, serviceHost: (fn) => `${fn.name}.svc` });
    expect(conf).toContain('upstream modelfn_beta_two {\n        server beta-two.svc:9000 max_fails=0;\n        keepalive 64;');
    expect(conf).toContain('proxy_pass http://modelfn_alpha;');
    expect(conf).not.toContain('resolver ');
  });

  it("answers a body over a function's limit with the function's own 413, naming the limit, from nginx itself", async () => {
    const conf = nginxConfig(functions, { mode: 'vip', serviceHost: () => '127.0.0.1', functionPort: await freePort() });
    expect(conf).toContain("return 413 '{\"error\":\"request body is larger than the limit of 2097152 bytes for \\'alpha\\'\"}';");
    const image = gatewayNginxImage('a 413 from the real nginx');
    if (!image) return;
    // nginx refuses on Content-Length alone: no function needs to run behind it.
    const gateway = await startNginx(image, conf, '<!doctype html>', join(scratch, 'gateway-413'));
    try {
      for (const path of ['/alpha/predict', '/v2/models/alpha/infer']) {
        const res = await fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: 'x'.repeat(2 * 1024 * 1024 + 1) });
        expect(res.status, path).toBe(413);
        expect(res.headers.get('content-type')).toBe('application/json');
        expect(await res.json()).toEqual({ error: "request body is larger than the limit of 2097152 bytes for 'alpha'" });
      }
    } finally {
      await gateway.stop();
    }
  });

  it('counts the request bodies held by size class, per function and in all, within the gateway\'s body space', () => {
    const conf = nginxConfig(functions, { mode: 'dns' });
    const alpha = conf.slice(conf.indexOf('location ^~ /alpha/ {'), conf.indexOf('}', conf.indexOf('location ^~ /alpha/ {')));
    const beta = conf.slice(conf.indexOf('location ^~ /b/ {'), conf.indexOf('}', conf.indexOf('location ^~ /b/ {')));
    const count = (block: string, zone: string) => Number(new RegExp(`limit_conn ${zone} (\\d+);`).exec(block)?.[1]);
    const MiB = 1024 * 1024;
    for (const size of GATEWAY_BODIES.classes) {
      // alpha takes 2 MiB bodies, beta-two 1 MiB: the large class counts each at its own limit, in all at the largest.
      const largest = (limit: number) => Math.min(size.largestBytes ?? Infinity, limit);
      expect(count(alpha, `modelfn_${size.name}_fn`)).toBe(Math.floor(size.spaceMiB * MiB / 2 / largest(2 * MiB)));
      expect(count(beta, `modelfn_${size.name}_fn`)).toBe(Math.floor(size.spaceMiB * MiB / 2 / largest(MiB)));
      expect(count(alpha, `modelfn_${size.name}_all`)).toBe(Math.floor(size.spaceMiB * MiB / largest(2 * MiB)));
      // Never more bytes than the class's space, per function (half) or in all.
      expect(count(alpha, `modelfn_${size.name}_all`) * largest(2 * MiB)).toBeLessThanOrEqual(size.spaceMiB * MiB);
    }
    expect(GATEWAY_BODIES.classes.reduce((n, c) => n + c.spaceMiB, 0)).toBe(GATEWAY_BODIES.spaceMiB);
    expect(conf).toContain(`client_body_buffer_size ${GATEWAY_BODIES.memoryBytes};`);
    // Over a count: its own 503 page with Retry-After, never the activator.
    expect(conf).toContain(`limit_conn_status ${GATEWAY_BODIES.busyStatus};`);
    expect(alpha).toContain(`error_page ${GATEWAY_BODIES.busyStatus} =503 @modelfn_busy;`);
    expect(conf).toMatch(/location @modelfn_busy \{\n\s+default_type application\/json;[^}]*add_header Retry-After 1 always;[^}]*return 503 /);
  });

  it('caps the requests each function has in flight by the replicas it may run, all versions together', () => {
    const conf = nginxConfig(functions, { mode: 'dns' });
    expect(conf).toContain('limit_conn_zone $modelfn_fn zone=modelfn_in_flight:256k;');
    for (const fn of functions) {
      const block = conf.slice(conf.indexOf(`location ^~ ${fn.prefix}/ {`), conf.indexOf('}', conf.indexOf(`location ^~ ${fn.prefix}/ {`)));
      expect(block).toContain(`limit_conn modelfn_in_flight ${inFlightOf(fn)};`);
    }
    const one = functions[0];
    expect(inFlightOf({ ...one, scale: undefined, replicas: 3, versions: [one.versions[0]] } as ResolvedFunction)).toBe(3 * GATEWAY_IN_FLIGHT_PER_REPLICA);
    expect(inFlightOf({ ...one, scale: { ...(one.scale ?? {}), max: 5 }, replicas: 1 } as ResolvedFunction)).toBe(5 * GATEWAY_IN_FLIGHT_PER_REPLICA);
    expect(inFlightOf({ ...one, scale: undefined, versions: [{ ...one.versions[0], replicas: 2 }, { ...one.versions[0], version: '2', replicas: 1 }] } as ResolvedFunction)).toBe(3 * GATEWAY_IN_FLIGHT_PER_REPLICA);
  });

  it('names the function in a header nginx sets, replacing the client\'s', () => {
    const conf = nginxConfig(functions, { mode: 'dns' });
    expect(conf).toContain('proxy_set_header X-Modelfn-Function $modelfn_unit;');
    expect(conf).toContain("        set $modelfn_unit '';\n");
    const block = conf.slice(conf.indexOf('location ^~ /b/ {'));
    expect(block.slice(0, block.indexOf('}'))).toContain('set $modelfn_unit beta-two;');
  });

  it('renders configs nginx accepts, in both modes', () => {
    for (const conf of [nginxConfig(functions, { mode: 'dns', resolver: '127.0.0.1' }), nginxConfig(functions, { mode: 'vip', serviceHost: () => '127.0.0.1' })]) {
      const result = nginxTest(conf);
      if (!result) return;
      expect(result.status, result.output).toBe(0);
    }
  });

  describe('a function with versions', () => {
    const versions = ['1', '2', '3'].map((version) => ({ version, modelFile: `${version}/model.onnx`, docs: {} }));
    const flowers = resolveDeclaration({ traffic: { '1': 33.33, '2': 66.67 }, shadow: { '3': 12.5 } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);

    it('has an upstream per version, a split_clients on the traffic key written as the runtime reads it, and a mirror of the shadow\'s share', () => {
      const conf = nginxConfig([flowers, ...functions], { mode: 'dns' });
      for (const v of ['1', '2', '3']) expect(conf).toMatch(new RegExp(`upstream modelfn_flowers_v${v} \\{\\n[^}]*server flowers-v${v}:8080 resolve`));
      expect(conf).toContain('map $http_x_modelfn_traffic_key $modelfn_traffic_key {\n        default $http_x_modelfn_traffic_key;\n        \'\' $request_id;\n    }');
      expect(conf).toContain('split_clients "$modelfn_traffic_key" $modelfn_flowers_version {\n        33.33% modelfn_flowers_v1;\n        * modelfn_flowers_v2;\n    }');
      expect(conf).toContain('split_clients "shadow:$modelfn_traffic_key" $modelfn_flowers_shadow {\n        12.5% modelfn_flowers_v3;\n    }');
      // The split's routes follow the variable and copy to the mirror; a versioned path goes to its version alone.
      const prefix = conf.slice(conf.indexOf('location ^~ /flowers/ {'));
      expect(prefix.slice(0, prefix.indexOf('}'))).toMatch(/mirror \/_modelfn\/mirror\/flowers;[\s\S]*proxy_pass http:\/\/\$modelfn_flowers_version;$/m);
      const v2 = conf.slice(conf.indexOf('location ^~ /v2/models/flowers/versions/2/ {'));
      expect(v2.slice(0, v2.indexOf('}'))).not.toContain('mirror');
      expect(v2.slice(0, v2.indexOf('}'))).toContain('proxy_pass http://modelfn_flowers_v2;');
      // A function with one version is rendered as before: no split, no per-version upstream.
      expect(conf).toContain('upstream modelfn_alpha {');
      expect(conf).not.toContain('modelfn_alpha_version');
    });

    it('tells its /stats the split this file runs, from one version that gathers them all; other functions\' requests carry no split', () => {
      const conf = nginxConfig([flowers, ...functions], { mode: 'dns' });
      const stats = conf.slice(conf.indexOf('location = /flowers/stats {'));
      expect(stats.slice(0, stats.indexOf('}'))).toMatch(/set \$modelfn_split 'traffic 1=33\.33 2=66\.67; shadow 3=12\.5';\n\s+set \$modelfn_prefix \/flowers;\n\s+rewrite \^\/flowers\(\/\.\*\)\$ \$1 break;\n\s+proxy_pass http:\/\/\$modelfn_flowers_version;$/m);
      expect(stats.slice(0, stats.indexOf('}'))).not.toContain('mirror');
      expect(conf).toContain('proxy_set_header X-Modelfn-Split $modelfn_split;');
      expect(conf).toMatch(/listen \d+ default_server;\n\s+set \$modelfn_fn '';\n\s+set \$modelfn_unit '';\n\s+set \$modelfn_prefix '';\n\s+set \$modelfn_split '';/);
      // A changed split (modelfn traffic renders the file again) is the one told.
      expect(nginxConfig([{ ...flowers, traffic: [{ version: '1', percent: 0 }, { version: '2', percent: 100 }] }], { mode: 'dns' })).toContain("set $modelfn_split 'traffic 1=0 2=100; shadow 3=12.5';");
      // Without versions, nothing of it.
      expect(nginxConfig(functions, { mode: 'dns' })).not.toContain('modelfn_split');
    });

    it('leaves a 0% share out (nginx would read it as *), and needs no mirror without a shadow', () => {
      const zero = resolveDeclaration({ traffic: { '1': 0, '2': 100 } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions: versions.slice(0, 2) }, config);
      const conf = nginxConfig([zero], { mode: 'dns' });
      expect(conf).toContain('split_clients "$modelfn_traffic_key" $modelfn_flowers_version {\n        * modelfn_flowers_v2;\n    }');
      expect(conf).not.toContain('mirror');
    });

    describe('each version its own scale', () => {
      const two = versions.slice(0, 2);
      /** Version 1 asleep at 0%, version 2 serving everything, always running. */
      const rollback = resolveDeclaration({ traffic: { '1': 0, '2': 100 }, versions: { '1': { scale: { min: 0, idleSeconds: 60 } } } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions: two }, config);
      const location = (conf: string, path: string) => {
        const at = conf.slice(conf.indexOf(`location ^~ ${path} {`));
        return at.slice(0, at.indexOf('}'));
      };

      it("hands a failed connect to the activator on the scaling version's own paths, naming its service, and nowhere else", () => {
        const conf = nginxConfig([rollback], { mode: 'dns', activator: 'activator' });
        const v1 = location(conf, '/v2/models/flowers/versions/1/');
        expect(v1).toContain('set $modelfn_unit flowers-v1;');
        expect(v1).toContain('proxy_connect_timeout 10ms;');
        expect(v1).toContain('error_page 502 503 504 = @modelfn_activate;');
        // Version 2 and the split (all of it on version 2) never wake anything.
        for (const path of ['/v2/models/flowers/versions/2/', '/flowers/', '/v2/models/flowers/']) {
          expect(location(conf, path)).not.toContain('@modelfn_activate');
          expect(location(conf, path)).not.toContain('proxy_connect_timeout');
        }
        expect(location(conf, '/flowers/')).toContain('set $modelfn_unit $modelfn_flowers_unit;');
        expect(conf).toContain('map $modelfn_flowers_version $modelfn_flowers_unit {\n        modelfn_flowers_v1 flowers-v1;\n        modelfn_flowers_v2 flowers-v2;\n    }');
        expect(conf).toContain('location @modelfn_activate {');
        expect(conf).toContain('server activator:8080 resolve max_fails=0;');
        // Only scaling versions reach the activator here: no check of which one it is.
        expect(conf).not.toContain('$modelfn_wakes');
        // In-flight cap: version 1 at its most (1) and version 2's replica.
        expect(location(conf, '/flowers/')).toContain(`limit_conn modelfn_in_flight ${2 * GATEWAY_IN_FLIGHT_PER_REPLICA};`);
      });

      it('wakes through the split once it gives the sleeping version a share, the activator told only of versions that scale', () => {
        const shared = { ...rollback, traffic: [{ version: '1', percent: 10 }, { version: '2', percent: 90 }] };
        const conf = nginxConfig([shared], { mode: 'dns', activator: 'activator' });
        expect(location(conf, '/flowers/')).toContain('error_page 502 503 504 = @modelfn_activate;');
        expect(conf).toContain('map $modelfn_unit $modelfn_wakes {\n        default 0;\n        flowers-v1 1;\n    }');
        const activate = conf.slice(conf.indexOf('location @modelfn_activate {'));
        expect(activate.slice(0, activate.indexOf('proxy_pass'))).toMatch(/if \(\$modelfn_wakes = 0\) \{[^}]*add_header Retry-After 1 always;[^}]*return 503 /);
        const result = nginxTest(nginxConfig([shared, ...functions], { mode: 'dns', activator: '127.0.0.1', resolver: '127.0.0.1' }));
        if (result) expect(result.status, result.output).toBe(0);
      });

      it('without an activator (Kubernetes), answers a sleeping version as unavailable', () => {
        const conf = nginxConfig([rollback], { mode: 'vip' });
        expect(conf).not.toContain('modelfn_activat');
        expect(location(conf, '/v2/models/flowers/versions/1/')).toContain('error_page 502 503 =503 @modelfn_unavailable;');
      });
    });

    it('renders a config nginx accepts, in both modes', () => {
      for (const conf of [nginxConfig([flowers, ...functions], { mode: 'dns', resolver: '127.0.0.1' }), nginxConfig([flowers], { mode: 'vip', serviceHost: () => '127.0.0.1' })]) {
        const result = nginxTest(conf);
        if (!result) return;
        expect(result.status, result.output).toBe(0);
      }
    });
  });
});
