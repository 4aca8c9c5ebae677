// A strict reader of the text exposition format 0.0.4, for tests that scrape a running server.
// It turns a body into samples ({name, labels, value}) and, while doing so, refuses anything
// that Prometheus or promtool would refuse, plus anything our writer promises never to emit
// (comments, blank lines, timestamps, trailing commas, non-canonical values, split families).
// So every test that parses a scrape also checks its format.
import * as http from 'node:http';
import * as zlib from 'node:zlib';

/** One sample line. */
export interface Sample {
  /** Sample name as printed, e.g. `x_bucket` for a histogram's bucket. */
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Its family's name (`x` for `x_bucket`, `x_sum`, `x_count`). */
  family: string;
  /** The line as received, for failure messages. */
  line: string;
}

/** A family: its HELP text (unescaped), TYPE and samples, in body order. */
export interface ExpositionFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: Sample[];
}

/** A parsed scrape body. */
export interface Exposition {
  samples: Sample[];
  /** Families by name, in body order (a Map keeps insertion order). */
  families: Map<string, ExpositionFamily>;
}

/** A format violation, naming the line. */
export class ExpositionError extends Error {}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** How our writer spells a value: JS's shortest round-trip form, or NaN / +Inf / -Inf. */
function canonicalValue(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (v !== v) return 'NaN';
  return String(v);
}

function parseValue(text: string, fail: (msg: string) => never): number {
  let v: number;
  if (text === 'NaN') v = NaN;
  else if (text === '+Inf') v = Infinity;
  else if (text === '-Inf') v = -Infinity;
  else if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) v = Number(text);
  else fail(`invalid value ${JSON.stringify(text)}`);
  if (canonicalValue(v) !== text) fail(`value ${JSON.stringify(text)} is not written canonically (${canonicalValue(v)})`);
  return v;
}

// HELP text: only `\\` and `\n` are escapes (promtool 2.42 refuses `\"` there).
function unescapeHelp(text: string, fail: (msg: string) => never): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = text[++i];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else fail(`invalid escape sequence '\\${next ?? ''}' in HELP`);
  }
  return out;
}

// `{a="x",b="y"}` from position 0 of `rest`; returns the labels and what follows the brace.
function parseLabels(rest: string, fail: (msg: string) => never): { labels: Record<string, string>; after: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  if (rest[i] === '}') fail('empty label braces (our writer prints none)');
  for (;;) {
    const name = LABEL_NAME.exec(rest.slice(i))?.[0];
    if (name === undefined) fail(`invalid label name at ${JSON.stringify(rest.slice(i, i + 20))}`);
    if (name === '__name__' || name.startsWith('__')) fail(`reserved label name ${name}`);
    if (Object.hasOwn(labels, name)) fail(`label ${name} repeated`);
    i += name.length;
    if (rest[i] !== '=' || rest[i + 1] !== '"') fail(`expected ="… after label ${name}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = rest[i];
      if (c === undefined) fail(`unexpected end of label value of ${name}`);
      if (c === '"') break;
      if (c === '\\') {
        const next = rest[i + 1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else fail(`invalid escape sequence '\\${next ?? ''}' in label value`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    labels[name] = value;
    i++;
    if (rest[i] === '}') return { labels, after: rest.slice(i + 1) };
    if (rest[i] !== ',') fail(`expected , or } after label ${name}`);
    i++;
    if (rest[i] === '}') fail('trailing comma in labels (our writer prints none)');
  }
}

// The family a sample belongs to: its own name, or the base of a histogram's or summary's suffix.
function familyOf(name: string, families: Map<string, ExpositionFamily>): ExpositionFamily | undefined {
  const own = families.get(name);
  if (own !== undefined && own.type !== 'histogram') return own;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m === null) return undefined;
  const base = families.get(m[1]);
  if (base === undefined) return undefined;
  if (base.type === 'histogram') return base;
  if (base.type === 'summary' && m[2] !== 'bucket') return base;
  return undefined;
}

function seriesKey(name: string, labels: Record<string, string>): string {
  return JSON.stringify([name, Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
}

/**
 * Parses a scrape body, throwing ExpositionError at the first violation of text format 0.0.4
 * or of our writer's canonical form: UTF-8 (checked when given bytes), LF line ends and a final
 * LF, no `\r`, no blank or comment lines, `# HELP` then `# TYPE` once per family before its
 * samples, families contiguous, valid names and escapes, one space between series and value,
 * no timestamp, canonical values, no duplicate series, counters ≥ 0, and histograms with
 * increasing `le`, cumulative buckets, `+Inf` equal to `_count`, then `_sum` and `_count`.
 */
export function parseExposition(body: string | Buffer): Exposition {
  let text: string;
  if (typeof body === 'string') {
    text = body;
  } else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      throw new ExpositionError('body is not valid UTF-8');
    }
  }
  const families = new Map<string, ExpositionFamily>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  if (text === '') return { samples, families };
  if (text.includes('\r')) throw new ExpositionError('body contains \\r');
  if (!text.endsWith('\n')) throw new ExpositionError('body does not end with a line feed');
  const lines = text.slice(0, -1).split('\n');
  let current: ExpositionFamily | null = null;
  let pendingHelp: { name: string; help: string } | null = null;
  const closed = new Set<string>();

  lines.forEach((line, index) => {
    const fail = (msg: string): never => {
      throw new ExpositionError(`line ${index + 1}: ${msg}: ${JSON.stringify(line.slice(0, 200))}`);
    };
    if (line === '') fail('blank line (our writer prints none)');
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([^ ]+) (.*)$/.exec(line);
      if (m === null) fail('comment that is neither # HELP nor # TYPE');
      const [, kind, name, rest] = m!;
      if (METRIC_NAME.exec(name)?.[0] !== name) fail(`invalid metric name ${JSON.stringify(name)}`);
      if (kind === 'HELP') {
        if (pendingHelp !== null) fail(`HELP of ${pendingHelp.name} not followed by its TYPE`);
        if (families.has(name) || closed.has(name)) fail(`second HELP for ${name}`);
        pendingHelp = { name, help: unescapeHelp(rest, fail) };
        return;
      }
      if (pendingHelp === null || pendingHelp.name !== name) fail(`TYPE of ${name} without its HELP right before`);
      if (!TYPES.has(rest)) fail(`unknown type ${JSON.stringify(rest)}`);
      if (current !== null) closed.add(current.name);
      current = { name, help: pendingHelp!.help, type: rest as ExpositionFamily['type'], samples: [] };
      families.set(name, current);
      pendingHelp = null;
      return;
    }
    if (pendingHelp !== null) fail(`HELP of ${pendingHelp.name} not followed by its TYPE`);
    const name = METRIC_NAME.exec(line)?.[0];
    if (name === undefined) fail('sample line does not start with a metric name');
    let rest = line.slice(name!.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, after: rest } = parseLabels(rest, fail));
    if (!rest.startsWith(' ') || rest.startsWith('  ')) fail('expected exactly one space before the value');
    const valueText = rest.slice(1);
    if (valueText.includes(' ') || valueText.includes('\t')) fail('timestamp or trailing blank after the value (our writer prints neither)');
    const value = parseValue(valueText, fail);
    const family = familyOf(name!, families);
    if (family === undefined) fail(`sample ${name} has no # TYPE`);
    if (family !== current || closed.has(family!.name)) fail(`sample of ${family!.name} outside its family's group`);
    if (family!.type === 'histogram' ? name === family!.name || Object.hasOwn(labels, 'le') !== name!.endsWith('_bucket') : Object.hasOwn(labels, 'le')) {
      fail('le label only on, and always on, a histogram bucket');
    }
    if (family!.type === 'counter' && !(value >= 0)) fail('counter value must be ≥ 0');
    const key = seriesKey(name!, labels);
    if (seen.has(key)) fail('duplicate series');
    seen.add(key);
    const sample: Sample = { name: name!, labels, value, family: family!.name, line };
    family!.samples.push(sample);
    samples.push(sample);
  });
  if (pendingHelp !== null) throw new ExpositionError(`HELP of ${(pendingHelp as { name: string }).name} without TYPE at the end`);
  for (const family of families.values()) {
    if (family.samples.length === 0) throw new ExpositionError(`family ${family.name} has no samples (our writer omits such families)`);
    if (family.type === 'histogram') checkHistogram(family);
  }
  return { samples, families };
}

// Per series: buckets in increasing `le` order ending in +Inf, cumulative, then _sum, then _count = +Inf.
function checkHistogram(family: ExpositionFamily): void {
  const fail = (msg: string, s: Sample): never => {
    throw new ExpositionError(`histogram ${family.name}: ${msg}: ${JSON.stringify(s.line)}`);
  };
  const list = family.samples;
  let i = 0;
  while (i < list.length) {
    const first = list[i];
    const { le: _le, ...series } = first.labels;
    const id = JSON.stringify(series);
    let previousBound = -Infinity;
    let previousCount = 0;
    let infCount: number | null = null;
    while (i < list.length && list[i].name === `${family.name}_bucket`) {
      const s = list[i];
      const { le, ...rest } = s.labels;
      if (JSON.stringify(rest) !== id) break;
      if (infCount !== null) fail('bucket after le="+Inf"', s);
      const bound = parseValue(le, (msg) => fail(`le: ${msg}`, s));
      if (!(bound > previousBound)) fail('le not increasing', s);
      if (s.value < previousCount) fail('buckets not cumulative', s);
      previousBound = bound;
      previousCount = s.value;
      if (bound === Infinity) infCount = s.value;
      i++;
    }
    if (infCount === null) fail('series without a le="+Inf" bucket', list[Math.min(i, list.length - 1)]);
    const sum = list[i];
    if (sum === undefined || sum.name !== `${family.name}_sum` || JSON.stringify(sum.labels) !== id) fail('buckets not followed by _sum', list[i - 1]);
    const count = list[i + 1];
    if (count === undefined || count.name !== `${family.name}_count` || JSON.stringify(count.labels) !== id) fail('_sum not followed by _count', sum);
    if (count.value !== infCount) fail(`_count ${count.value} differs from le="+Inf" ${infCount}`, count);
    i += 2;
  }
}

/** The value of the one sample named `name` whose labels are exactly `labels`, or undefined. */
export function sampleValue(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const key = seriesKey(name, labels);
  for (const s of exposition.samples) if (s.name === name && seriesKey(s.name, s.labels) === key) return s.value;
  return undefined;
}

/** The ten per-app families of pws-server, by their name after `<prefix><port>_`. */
export const APP_FAMILIES = [
  'connected',
  'new_connections_total',
  'new_disconnections_total',
  'socket_received_bytes',
  'socket_transmitted_bytes',
  'http_received_bytes',
  'http_transmitted_bytes',
  'http_calls_received_total',
  'ws_messages_received_total',
  'ws_messages_sent_total',
] as const;

export type AppFamily = (typeof APP_FAMILIES)[number];

/**
 * The ten per-app values of `appId`, keyed by short family name; throws when one is missing,
 * so a test comparing them with `deepEqual` always compares all ten.
 */
export function appValues(exposition: Exposition, base: string, appId: string): Record<AppFamily, number> {
  const out = {} as Record<AppFamily, number>;
  for (const family of APP_FAMILIES) {
    const v = sampleValue(exposition, base + family, { app_id: appId });
    if (v === undefined) throw new Error(`no sample ${base}${family}{app_id=${JSON.stringify(appId)}}`);
    out[family] = v;
  }
  return out;
}

/** A raw HTTP answer: bytes as sent (not gunzipped), and headers. */
export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * GET with node:http rather than fetch, because fetch gunzips silently and a test of
 * Content-Encoding needs the bytes as they came.
 */
export function rawGet(url: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** GETs `url` (a /metrics URL), checks 200 and text 0.0.4, gunzips if needed, parses strictly. */
export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Exposition & { text: string }> {
  const res = await rawGet(url, headers);
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}: ${res.body.toString().slice(0, 300)}`);
  if (res.headers['content-type'] !== 'text/plain; version=0.0.4; charset=utf-8') {
    throw new Error(`GET ${url}: Content-Type ${res.headers['content-type']}`);
  }
  const bytes = res.headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(res.body) : res.body;
  return { ...parseExposition(bytes), text: bytes.toString('utf8') };
}
