/**
 * The Knative Serving manifests in deploy/knative: valid against @kubernetes-models/knative's
 * schemas, and carrying each declaration's scale (min-scale, max-scale, scale-down-delay,
 * containerConcurrency) with the same image, probes and hardening as deploy/k8s.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Service as KnativeService } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import { Configuration } from '@kubernetes-models/knative/serving.knative.dev/v1/Configuration';
import { Route } from '@kubernetes-models/knative/serving.knative.dev/v1/Route';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { deployment } from './k8s.ts';
import { KNATIVE_DIR, knativeFiles, knativeService, wholePercents } from './knative.ts';
import { readConfig } from '../../runtime/core/config.ts';
import { resolveDeclaration } from '../../runtime/function/check.ts';
import { ROOT } from '../../runtime/testing/index.ts';

const config = readConfig({});
const declare = (declaration: object) => resolveDeclaration(declaration, { dir: '/nowhere/sleepy', folderName: 'sleepy' }, config);

function validated(text: string): any[] {
  return parseAllDocuments(text).map((doc) => {
    const m = doc.toJS();
    if (m.kind === 'Service') new KnativeService(m).validate();
    else if (m.kind === 'Namespace') new Namespace(m).validate();
    else if (m.kind === 'Configuration') new Configuration(m).validate();
    else if (m.kind === 'Route') new Route(m).validate();
    else throw new Error(`unexpected ${m.kind}`);
    return m;
  });
}

describe('Knative Serving manifests (deploy/knative)', () => {
  it('validates every committed manifest against the Knative and Kubernetes schemas', () => {
    const dir = join(ROOT, KNATIVE_DIR);
    const names = readdirSync(dir).filter((n) => n !== 'kustomization.yaml');
    expect(names).toContain('iris.yaml');
    for (const name of names) expect(() => validated(readFileSync(join(dir, name), 'utf8')), name).not.toThrow();
  });

  it('renders a function that scales to zero with its bounds, idle time and concurrency', () => {
    const [service] = validated(knativeFiles([declare({ scale: { min: 0, idleSeconds: 3 } })], { tag: 'v2' })[`${KNATIVE_DIR}/sleepy.yaml`]);
    expect(service.apiVersion).toBe('serving.knative.dev/v1');
    expect(service.spec.template.metadata.annotations).toEqual({
      'autoscaling.knative.dev/min-scale': '0',
      'autoscaling.knative.dev/max-scale': '1',
      'autoscaling.knative.dev/initial-scale': '1',
      'autoscaling.knative.dev/scale-down-delay': '3s',
    });
    expect(service.spec.template.spec.containerConcurrency).toBe(32);
    expect(service.spec.template.spec.timeoutSeconds).toBe(31);
    expect(service.spec.template.spec.containers[0].image).toBe('modelfn/sleepy:v2');
  });

  it('keeps the probes and hardening of the Deployment', () => {
    const fn = declare({ scale: { min: 0, max: 3, idleSeconds: 7200, concurrency: 4 } });
    const knative = knativeService(fn).spec!.template!.spec!;
    const container = deployment(fn).spec!.template.spec!.containers[0];
    const [own] = knative.containers;
    expect(own.securityContext).toEqual(container.securityContext);
    expect(own.readinessProbe!.httpGet!.path).toBe(container.readinessProbe!.httpGet!.path);
    expect(own.livenessProbe!.httpGet!.path).toBe(container.livenessProbe!.httpGet!.path);
    expect(own.env).toEqual(container.env);
    expect(own.resources).toEqual(container.resources);
    expect(knative.containerConcurrency).toBe(4);
    // Knative refuses a delay above an hour.
    expect(knativeService(fn).spec!.template!.metadata!.annotations!['autoscaling.knative.dev/scale-down-delay']).toBe('3600s');
  });

  it('keeps a function without scale at its declared replicas', () => {
    const annotations = knativeService(declare({ replicas: 2 })).spec!.template!.metadata!.annotations!;
    expect(annotations['autoscaling.knative.dev/min-scale']).toBe('2');
    expect(annotations['autoscaling.knative.dev/scale-down-delay']).toBeUndefined();
    expect(knativeService(declare({ replicas: 2 })).spec!.template!.spec!.containerConcurrency).toBeUndefined();
  });
});

describe('a function with versions on Knative', () => {
  it('is a Configuration per version and a Route splitting by whole percents, each version tagged: all valid', () => {
    const versions = ['1', '2', '3'].map((version) => ({ version, modelFile: `${version}/model.onnx`, docs: {} }));
    const flowers = resolveDeclaration({ traffic: { '1': 33.33, '2': 66.67 } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);
    const objects = validated(knativeFiles([flowers])[`${KNATIVE_DIR}/flowers.yaml`]);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Configuration/flowers-v1', 'Configuration/flowers-v2', 'Configuration/flowers-v3', 'Route/flowers']);
    expect(objects[1].spec.template.spec.containers[0].env).toContainEqual({ name: 'MODELFN_VERSION', value: '2' });
    expect(objects[3].spec.traffic).toEqual([
      { configurationName: 'flowers-v1', percent: 33, tag: 'v1' },
      { configurationName: 'flowers-v2', percent: 67, tag: 'v2' },
      { configurationName: 'flowers-v3', percent: 0, tag: 'v3' },
    ]);
  });

  it("gives each version's Revisions that version's own scale", () => {
    const versions = ['1', '2'].map((version) => ({ version, modelFile: `${version}/model.onnx`, docs: {} }));
    const flowers = resolveDeclaration({ replicas: 2, traffic: { '1': 0, '2': 100 }, versions: { '1': { scale: { min: 0, idleSeconds: 60 } } } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);
    const [v1, v2] = validated(knativeFiles([flowers])[`${KNATIVE_DIR}/flowers.yaml`]);
    expect(v1.spec.template.metadata.annotations).toEqual({
      'autoscaling.knative.dev/min-scale': '0', 'autoscaling.knative.dev/max-scale': '1', 'autoscaling.knative.dev/initial-scale': '1', 'autoscaling.knative.dev/scale-down-delay': '60s',
    });
    expect(v1.spec.template.spec.containerConcurrency).toBe(32);
    expect(v2.spec.template.metadata.annotations['autoscaling.knative.dev/min-scale']).toBe('2');
    expect(v2.spec.template.spec.containerConcurrency).toBeUndefined();
  });

  it('rounds a split to whole percents that still sum to 100', () => {
    expect(wholePercents([33.33, 33.33, 33.34])).toEqual([33, 33, 34]);
    expect(wholePercents([12.5, 12.5, 75])).toEqual([13, 12, 75]);
    expect(wholePercents([80, 20, 0])).toEqual([80, 20, 0]);
  });
});

