// deploy/grafana/pws-server.json as Grafana 10+ imports it: a Prometheus data-source variable,
// `instance` and `app_id` variables that every query honours, panels that do not overlap, and
// port-bearing families named only as {__name__=~"pws_[0-9]+_…"} so any PORT works. The queries
// themselves are run against a real Prometheus by test/deploy/live.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { DASHBOARD, dashboardPanels, dashboardTopLevel } from '../helpers/deploy';

// The families labelled by app_id besides the ten seed ones (matched as {__name__=~…}).
const BY_APP = /^pws_(channels|channel_subscriptions|presence_members|channel_messages_total|channel_deliveries_total|webhooks_(sent|failed|retried)_total|webhook_events_(sent|dropped)_total|webhook_events_queued|limit_refusals_total|cluster_messages_(published|received)_total)$/;

test('the dashboard is a Grafana 10+ model with a Prometheus data-source variable and instance and app_id variables', () => {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  assert.equal(dashboard.uid, 'pws-server');
  assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
  assert.equal(dashboard.__inputs, undefined, 'a data-source variable, not an import-time input');
  const variables = dashboard.templating.list as Array<{ name: string; type: string; query: unknown; datasource?: { uid: string }; allValue?: string; multi?: boolean }>;
  assert.deepEqual(variables.map((v) => [v.name, v.type]), [['datasource', 'datasource'], ['instance', 'query'], ['app_id', 'query']]);
  assert.equal(variables[0].query, 'prometheus');
  for (const v of variables.slice(1)) {
    assert.equal(v.datasource?.uid, '${datasource}', v.name);
    assert.equal(v.allValue, '.*', v.name);
    assert.equal(v.multi, true, v.name);
  }
  assert.deepEqual((variables[1].query as { query: string }).query, 'label_values(pws_build_info, instance)');
});

test('every panel queries ${datasource}, filters by instance (and app where it has one), and has a description', () => {
  const panels = dashboardPanels();
  assert.ok(panels.length >= 30, `${panels.length} panels`);
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
  for (const panel of panels) {
    assert.equal(panel.datasource?.uid, '${datasource}', panel.title);
    assert.ok(panel.description && panel.description.length > 10, `${panel.title}: no description`);
    assert.ok(panel.targets && panel.targets.length > 0, `${panel.title}: no query`);
    for (const target of panel.targets) {
      assert.equal(target.datasource.uid, '${datasource}', panel.title);
      // Every selector of the query is narrowed to the chosen nodes, and to the chosen apps where the family has app_id.
      const selectors = [...target.expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}/g)];
      assert.ok(selectors.length > 0, `${panel.title}: ${target.expr}`);
      for (const [selector, name, matchers] of selectors) {
        assert.match(matchers, /instance=~"\$instance"/, `${panel.title}: ${selector}`);
        if (name === undefined || BY_APP.test(name)) assert.match(matchers, /app_id=~"\$app_id"/, `${panel.title}: ${selector}`);
      }
      // The port is in the names of the ten seed families: only ever matched by a regex.
      assert.doesNotMatch(target.expr.replace(/__name__=~"[^"]*"/g, ''), /pws_\d+_/, `${panel.title}: a literal port`);
    }
  }
});

test('panels within a row never overlap', () => {
  const all = dashboardTopLevel().flatMap((p) => [p, ...(p.panels ?? [])]);
  const cells = new Map<string, string>();
  for (const panel of all) {
    const { x, y, w, h } = panel.gridPos;
    assert.ok(x >= 0 && w > 0 && x + w <= 24, `${panel.title}: x ${x} w ${w}`);
    for (let i = x; i < x + w; i++) {
      for (let j = y; j < y + h; j++) {
        const key = `${i},${j}`;
        assert.ok(!cells.has(key), `${panel.title} overlaps ${cells.get(key)}`);
        cells.set(key, panel.title);
      }
    }
  }
});
