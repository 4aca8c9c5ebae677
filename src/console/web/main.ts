import { drawChart, formatNumber, type SeriesGroup } from './chart.js';
import { EventLog } from './event-log.js';
import type { ChannelRow, Figures, LogRow, Sample } from './wire.js';

const csrf = document.querySelector<HTMLMetaElement>('meta[name="csrf-token"]')!.content;

function byId<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

const appSelect = byId<HTMLSelectElement>('app-select');
const status = byId<HTMLElement>('stream-status');
const chart = byId<HTMLCanvasElement>('chart');
const chartSeries = byId<HTMLSelectElement>('chart-series');
const channelList = byId<HTMLTableSectionElement>('channel-list');
const log = new EventLog(byId<HTMLOListElement>('event-log'), byId<HTMLElement>('log-note'));

let stream: EventSource | null = null;
let samples: Sample[] = [];
let channelsShown = '';
let membersOf = '';

function stat(name: string, value: number | null): void {
  const el = document.querySelector<HTMLElement>(`[data-testid="stat-${name}"]`)!;
  el.textContent = value === null ? 'n/a' : formatNumber(value);
  el.title = value === null ? 'Needs METRICS_ENABLED on every node' : '';
}

function redraw(): void {
  drawChart(chart, samples, chartSeries.value as SeriesGroup, Date.now());
}

function showFigures(f: Figures): void {
  stat('connections', f.connections);
  stat('channels', f.channels);
  stat('members', f.members);
  stat('messages-in', f.rates.messagesIn);
  stat('messages-out', f.rates.messagesOut);
  stat('webhooks-sent', f.webhooksSent);
  stat('webhooks-failed', f.webhooksFailed);
  const key = JSON.stringify(f.list);
  if (key !== channelsShown) {
    channelsShown = key;
    showChannels(f.list, f.channels);
  }
  if (membersOf !== '') void showMembers(membersOf);
}

function showChannels(list: ChannelRow[], total: number): void {
  const rows = list.map((c) => {
    const tr = document.createElement('tr');
    tr.dataset.channel = c.name;
    const presence = c.name.startsWith('presence-');
    if (presence) {
      tr.className = 'presence';
      tr.title = 'Show its members';
      tr.addEventListener('click', () => void showMembers(c.name));
    }
    for (const text of [c.name, formatNumber(c.subscriptions), presence ? formatNumber(c.users) : '']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  });
  channelList.replaceChildren(...rows);
  byId('channel-more').textContent = total > list.length ? `and ${total - list.length} more with fewer subscriptions` : list.length === 0 ? 'No occupied channel.' : '';
}

async function showMembers(channel: string): Promise<void> {
  membersOf = channel;
  const answer = await fetch(`/console/api/members?app=${encodeURIComponent(appSelect.value)}&channel=${encodeURIComponent(channel)}`);
  if (!answer.ok || membersOf !== channel) return;
  const { members } = (await answer.json()) as { members: { id: string; info: unknown }[] };
  byId('members').hidden = false;
  byId('members-title').textContent = `${channel}: ${members.length} member${members.length === 1 ? '' : 's'}`;
  byId('member-list').replaceChildren(
    ...members.map((m) => {
      const li = document.createElement('li');
      li.textContent = m.info === null || m.info === undefined ? m.id : `${m.id} ${JSON.stringify(m.info)}`;
      return li;
    }),
  );
}

function open(appId: string): void {
  stream?.close();
  samples = [];
  channelsShown = '';
  membersOf = '';
  byId('members').hidden = true;
  log.clear();
  redraw();
  status.textContent = 'connecting…';
  history.replaceState(null, '', `#${encodeURIComponent(appId)}`);
  const source = (stream = new EventSource(`/console/api/stream?app=${encodeURIComponent(appId)}`));
  source.addEventListener('open', () => {
    status.textContent = 'live';
  });
  source.addEventListener('error', () => {
    status.textContent = 'reconnecting…';
  });
  source.addEventListener('samples', (e) => {
    samples = JSON.parse((e as MessageEvent<string>).data) as Sample[];
    redraw();
  });
  source.addEventListener('sample', (e) => {
    samples.push(JSON.parse((e as MessageEvent<string>).data) as Sample);
    if (samples.length > 200) samples.shift();
    redraw();
  });
  source.addEventListener('figures', (e) => showFigures(JSON.parse((e as MessageEvent<string>).data) as Figures));
  source.addEventListener('rows', (e) => {
    const { rows, dropped } = JSON.parse((e as MessageEvent<string>).data) as { rows: LogRow[]; dropped: number };
    log.add(rows, dropped);
  });
  source.addEventListener('gone', () => {
    status.textContent = 'this app no longer exists';
    source.close();
  });
}

async function send(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const result = byId<HTMLElement>('send-result');
  const data = byId<HTMLTextAreaElement>('send-data').value;
  try {
    JSON.parse(data);
  } catch {
    result.className = 'error';
    result.textContent = 'Data must be JSON.';
    return;
  }
  const answer = await fetch('/console/api/send', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: JSON.stringify({ app: appSelect.value, channel: byId<HTMLInputElement>('send-channel').value, event: byId<HTMLInputElement>('send-event').value, data }),
  });
  const body = (await answer.json()) as { error?: string };
  result.className = answer.ok ? 'ok' : 'error';
  result.textContent = answer.ok ? 'Sent.' : (body.error ?? `Refused (${answer.status}).`);
}

async function start(): Promise<void> {
  const answer = await fetch('/console/api/apps');
  const { apps } = (await answer.json()) as { apps: { id: string; key: string }[] };
  appSelect.replaceChildren(
    ...apps.map((app) => {
      const option = document.createElement('option');
      option.value = app.id;
      option.textContent = app.id;
      option.dataset.key = app.key;
      return option;
    }),
  );
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (apps.some((app) => app.id === wanted)) appSelect.value = wanted;
  const choose = () => {
    byId('app-key').textContent = `key ${appSelect.selectedOptions[0]?.dataset.key ?? ''}`;
    open(appSelect.value);
  };
  appSelect.addEventListener('change', choose);
  if (apps.length > 0) choose();
}

chartSeries.addEventListener('change', redraw);
window.addEventListener('resize', redraw);
// The time axis moves on between samples.
setInterval(redraw, 5000);
byId<HTMLFormElement>('send').addEventListener('submit', (e) => void send(e));
byId('log-pause').addEventListener('click', () => {
  byId('log-pause').textContent = log.togglePause() ? 'Resume' : 'Pause';
});
byId('log-clear').addEventListener('click', () => log.clear());
const refilter = () => log.filter(byId<HTMLInputElement>('log-channel').value, byId<HTMLSelectElement>('log-type').value);
byId('log-channel').addEventListener('input', refilter);
byId('log-type').addEventListener('change', refilter);
byId('logout').addEventListener('click', () => {
  void fetch('/console/logout', { method: 'POST', headers: { 'X-CSRF-Token': csrf } }).then(() => location.assign('/console'));
});
void start();
