// The gateway page's live view as served, before any script runs: a function with versions.
import { describe, expect, it } from 'vitest';
import { summarize, versionedStats, type FunctionStats, type StatsWindow } from '../core/stats.ts';
import { gatewayPage, type FunctionCard } from './ui.ts';

const window = (requests: number): StatsWindow => ({ seconds: 60, requests, errors: 0, le: [0.001, 0.01], counts: [0, requests, 0], batches: 0, batchRows: 0 });
const versions = [{ version: '1', traffic: 80 }, { version: '2', traffic: 20 }, { version: '3', traffic: 0, shadow: 50 }];
const flowers: FunctionCard = { name: 'flowers', prefix: '/flowers', replicas: 3, versions, document: { info: { description: 'flowers' }, paths: {} } };

/** The live view's version rows of a page: version, share, state, requests/s. */
const rowsOf = (page: string) => [...page.matchAll(/<tr data-live-version="(\w+)" data-version="(\d+)"[^]*?class="share">(<!--#[^>]*-->|[^<]*)<[^]*?class="state state-(?:<!--#[^>]*-->|[^"]*)">(<!--#[^>]*-->|[^<]*)<[^]*?data-field="rps">([^<]*)</g)]
  .map((m) => m.slice(1));

describe('the live view of a function with versions', () => {
  it('has a row per version with its live figures and its share of the split in force, where the page has them (embedded mode)', () => {
    const answers: FunctionStats[] = [['1', 60], ['2', 30], ['3', 6]].map(([version, n]) => ({ ...summarize('flowers', 'ready', window(Number(n))), version: String(version) }));
    // A split other than the declared one: the figures' is shown.
    const stats = versionedStats('flowers', ['1', '2', '3'], answers, { traffic: [{ version: '1', percent: 10 }, { version: '2', percent: 90 }], shadow: [{ version: '3', percent: 50 }] });
    expect(rowsOf(gatewayPage([{ ...flowers, stats }], 'test'))).toEqual([
      ['flowers', '1', '10%', 'ready', '1'],
      ['flowers', '2', '90%', 'ready', '0.5'],
      ['flowers', '3', 'shadow 50%', 'ready', '0.1'],
    ]);
  });

  it('behind nginx, has nginx fill in each version\'s share and state from the function\'s /stats as it sends the page', () => {
    const page = gatewayPage([flowers], 'test', { ssi: true });
    expect(page).toContain('<!--# include virtual="/flowers/stats" set="modelfn_stats_flowers" -->');
    expect(rowsOf(page).map((r) => r.slice(0, 4))).toEqual(['1', '2', '3'].map((v) => ['flowers', v, `<!--# echo var="modelfn_share_flowers_${v}" default="…" encoding="entity" -->`, `<!--# echo var="modelfn_vstate_flowers_${v}" default="…" encoding="entity" -->`]));
    // Without nginx's lookup (a function with API keys), the declared shares until the script's first refresh.
    expect(rowsOf(gatewayPage([{ ...flowers, keyed: true }], 'test')).map((r) => r[2])).toEqual(['80%', '20%', 'shadow 50%']);
  });

  it('has no version rows for a function with one version', () => {
    const page = gatewayPage([{ ...flowers, versions: undefined }], 'test');
    expect(page).toContain('<tr data-live="flowers"');
    expect(page).not.toContain('<tr data-live-version');
  });
});
