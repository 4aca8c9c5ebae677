// The monitoring kit under deploy/: the Grafana dashboard's panels and the Prometheus rules,
// read from the files as shipped.
import * as fs from 'node:fs';
import * as path from 'node:path';

const DEPLOY = path.join(__dirname, '..', '..', '..', 'deploy');
export const DASHBOARD = path.join(DEPLOY, 'grafana', 'pws-server.json');
export const RULES = path.join(DEPLOY, 'prometheus', 'pws-alerts.yml');
export const RULE_TESTS = path.join(DEPLOY, 'prometheus', 'pws-alerts.test.yml');

export interface Target {
  refId: string;
  expr: string;
  datasource: { type: string; uid: string };
}

export interface Panel {
  type: string;
  id: number;
  title: string;
  description?: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
  collapsed?: boolean;
}

/** The dashboard's top level: rows and the panels of open rows. */
export function dashboardTopLevel(): Panel[] {
  return (JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] }).panels;
}

/** Every panel, those inside collapsed rows included, rows excluded. */
export function dashboardPanels(): Panel[] {
  return dashboardTopLevel().flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

/** A rule of pws-alerts.yml: its kind, its name and its expression. */
export interface Rule {
  kind: 'record' | 'alert';
  name: string;
  expr: string;
  /** The rule's whole text, for checks on its labels and annotations. */
  text: string;
}

/**
 * The rules of pws-alerts.yml in file order. The file is written in one shape, which this reads:
 * `- record: x` or `- alert: x` at six spaces, then `expr:` either on one line or as a `|` block.
 */
export function rules(): Rule[] {
  const text = fs.readFileSync(RULES, 'utf8');
  return text
    .split(/^(?= {6}- (?:alert|record): )/m)
    .slice(1)
    .map((block) => {
      const head = /^ {6}- (alert|record): (\S+)$/m.exec(block)!;
      const lines = block.split('\n');
      const at = lines.findIndex((l) => /^ {8}expr: /.test(l));
      const first = lines[at].slice('        expr: '.length);
      let expr = first;
      if (first === '|') {
        const body: string[] = [];
        for (const line of lines.slice(at + 1)) {
          if (!line.startsWith('          ')) break;
          body.push(line.trim());
        }
        expr = body.join('\n');
      }
      return { kind: head[1] as Rule['kind'], name: head[2], expr, text: block };
    });
}
