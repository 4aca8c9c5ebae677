// Text exposition format 0.0.4: the rules that decide what a scrape body looks like.
// Everything here runs when a family or series is created, except formatValue, which
// runs once per sample per scrape.

/** Content-Type of every scrape answer: always text 0.0.4, never OpenMetrics. */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * Bodies from this size on are gzipped (scrapes that accept it, pushes). Below it gzip saves
 * less than it costs: a body that fits TCP's initial congestion window (10 segments of 1460
 * bytes, RFC 6928) arrives in one round trip anyway.
 */
export const GZIP_MIN_BYTES = 14600;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Throws unless `name` is a valid metric name. */
export function checkMetricName(name: string): void {
  if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
}

/**
 * Throws unless every label name is valid, unique and not reserved: `__` belongs to
 * Prometheus, `le` to histograms and `quantile` to summaries, which the exposition
 * adds itself, so a user label with either name would clash or confuse the linter.
 */
export function checkLabelNames(metric: string, labelNames: readonly string[]): void {
  const seen = new Set<string>();
  for (const label of labelNames) {
    if (!LABEL_NAME.test(label) || label.startsWith('__')) {
      throw new Error(`invalid label name ${JSON.stringify(label)} for ${metric}`);
    }
    if (label === 'le' || label === 'quantile') {
      throw new Error(`label name ${label} is reserved (${metric})`);
    }
    if (seen.has(label)) throw new Error(`duplicate label name ${label} for ${metric}`);
    seen.add(label);
  }
}

/** HELP text escaping: `"` stays as it is, because promtool 2.42 rejects `\"` there. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Label value escaping; the backslash goes first so the escapes added later survive. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** `a="x",b="y"`: the inside of a series' braces, escaped once when the series is created. */
export function labelPairs(labelNames: readonly string[], labelValues: readonly string[]): string {
  let out = '';
  for (let i = 0; i < labelNames.length; i++) {
    out += `${i ? ',' : ''}${labelNames[i]}="${escapeLabelValue(labelValues[i])}"`;
  }
  return out;
}

/** `name{pairs} `, or `name ` without labels: everything of a sample line before its value. */
export function samplePrefix(name: string, pairs: string): string {
  return pairs ? `${name}{${pairs}} ` : `${name} `;
}

/** `# HELP` and `# TYPE` lines of a family, rendered once at registration. */
export function familyHeader(name: string, type: string, help: string): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
}

/**
 * A sample value as Prometheus spells it. String() already prints integers below 1e21
 * without exponent or `.0`, and -0 as 0; only the non-finite values need words.
 */
export function formatValue(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (v !== v) return 'NaN';
  return String(v);
}
