// The gateway's route table alone: what nginx and embedded mode are both made from.
import { describe, expect, it } from 'vitest';
import { forwardedPath, functionIndex, gatewayRoutes, matchRoute, noRoute } from './routes.ts';

const functions = [{ name: 'iris', prefix: '/iris' }, { name: 'iris-v2', prefix: '/flowers/iris' }];
const routes = gatewayRoutes(functions);
const route = (path: string) => {
  const found = matchRoute(routes, path);
  return found && { fn: found.fn, kind: found.kind, to: forwardedPath(found, path) };
};

describe('gatewayRoutes and matchRoute', () => {
  it("sends /<prefix>/... to the function with its prefix stripped, and /v2/models/<name>/... unchanged", () => {
    expect(route('/iris/predict')).toEqual({ fn: 'iris', kind: 'prefix', to: '/predict' });
    expect(route('/iris/')).toEqual({ fn: 'iris', kind: 'prefix', to: '/' });
    expect(route('/flowers/iris/docs')).toEqual({ fn: 'iris-v2', kind: 'prefix', to: '/docs' });
    expect(route('/v2/models/iris/infer')).toEqual({ fn: 'iris', kind: 'prefix', to: '/v2/models/iris/infer' });
    expect(route('/v2/models/iris')).toEqual({ fn: 'iris', kind: 'exact', to: '/v2/models/iris' });
  });

  it("takes a versioned function's /stats apart from its split: every version's figures, the prefix stripped", () => {
    const versions = [{ version: '1' }, { version: '2' }];
    const table = gatewayRoutes([{ name: 'flowers', prefix: '/flowers', versions }, { name: 'iris', prefix: '/iris', versions: versions.slice(0, 1) }]);
    const at = (path: string) => {
      const found = matchRoute(table, path)!;
      return { kind: found.kind, to: forwardedPath(found, path) };
    };
    expect(at('/flowers/stats')).toEqual({ kind: 'stats', to: '/stats' });
    expect(at('/flowers/stats/x')).toEqual({ kind: 'prefix', to: '/stats/x' });
    expect(at('/iris/stats')).toEqual({ kind: 'prefix', to: '/stats' });
  });

  it('redirects the bare prefix, and matches names whole, not as the start of another', () => {
    expect(route('/iris')).toEqual({ fn: 'iris', kind: 'redirect', to: '/iris' });
    expect(route('/v2/models/iris-v2/ready')?.fn).toBe('iris-v2');
    expect(route('/irises/predict')).toBeUndefined();
    expect(route('/v2/models/iri')).toBeUndefined();
    expect(route('/')).toBeUndefined();
  });
});

describe('functionIndex', () => {
  it("lists each function's routes and replicas, as GET / answers: only the routes that work", () => {
    const index = functionIndex([
      { name: 'iris', prefix: '/iris', replicas: 2, inputs: 1, ownRoutes: [{ method: 'POST', path: '/species' }] },
      { name: 'vad', prefix: '/vad', replicas: 1, inputs: 3 },
      { name: 'broken', prefix: '/broken', replicas: 1, error: 'model.onnx: not a valid ONNX model' },
    ]);
    expect(index.name).toBe('modelfn');
    expect(index.functions).toEqual([
      { name: 'iris', prefix: '/iris', model: '/v2/models/iris', predict: '/iris/predict', routes: ['POST /iris/species'], docs: '/iris/docs', replicas: 2 },
      // /predict takes models with one input: not advertised for three.
      { name: 'vad', prefix: '/vad', model: '/v2/models/vad', docs: '/vad/docs', replicas: 1 },
      { name: 'broken', prefix: '/broken', model: '/v2/models/broken', docs: '/broken/docs', replicas: 1, error: 'model.onnx: not a valid ONNX model' },
    ]);
  });

  it('answers a path no function takes by naming the functions and how to add one', () => {
    expect(noRoute(['/iris', '/vad'])).toBe('no route at the gateway for this path; the functions are at /iris/, /vad/ (GET / lists them); add one with npx modelfn new <name>');
    expect(noRoute([])).toBe('no route at the gateway for this path: there are no functions yet; add one with npx modelfn new <name>');
  });
});
