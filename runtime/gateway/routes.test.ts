// The gateway's route table alone: what nginx and embedded mode are both made from.
import { describe, expect, it } from 'vitest';
import { forwardedPath, functionIndex, gatewayRoutes, matchRoute } from './routes.ts';

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

  it('redirects the bare prefix, and matches names whole, not as the start of another', () => {
    expect(route('/iris')).toEqual({ fn: 'iris', kind: 'redirect', to: '/iris' });
    expect(route('/v2/models/iris-v2/ready')?.fn).toBe('iris-v2');
    expect(route('/irises/predict')).toBeUndefined();
    expect(route('/v2/models/iri')).toBeUndefined();
    expect(route('/')).toBeUndefined();
  });
});

describe('functionIndex', () => {
  it("lists each function's routes and replicas, as GET / answers", () => {
    const index = functionIndex([{ name: 'iris', prefix: '/iris', replicas: 2 }]);
    expect(index.name).toBe('modelfn');
    expect(index.functions).toEqual([{ name: 'iris', prefix: '/iris', model: '/v2/models/iris', predict: '/iris/predict', docs: '/iris/docs', replicas: 2 }]);
  });
});
