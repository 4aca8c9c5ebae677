import type { Sample } from './wire.js';

/** Which lines the chart draws. */
export type SeriesGroup = 'counts' | 'messages' | 'webhooks';

const WINDOW_MS = 15 * 60 * 1000;
const GROUPS: Record<SeriesGroup, { label: string; field: keyof Sample; color: string }[]> = {
  counts: [
    { label: 'connections', field: 'connections', color: '#3b5bdb' },
    { label: 'channels', field: 'channels', color: '#2b8a3e' },
    { label: 'presence members', field: 'members', color: '#e67700' },
  ],
  messages: [
    { label: 'in /s', field: 'messagesIn', color: '#3b5bdb' },
    { label: 'out /s', field: 'messagesOut', color: '#e67700' },
  ],
  webhooks: [
    { label: 'sent /s', field: 'webhooksSent', color: '#2b8a3e' },
    { label: 'failed /s', field: 'webhooksFailed', color: '#c92a2a' },
  ],
};

/** Draws the last 15 minutes of samples as lines on a canvas: axes, grid, legend; no library. */
export function drawChart(canvas: HTMLCanvasElement, samples: Sample[], group: SeriesGroup, now: number): void {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext('2d');
  if (g === null) return;
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const left = 48;
  const right = 12;
  const top = 24;
  const bottom = 24;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const series = GROUPS[group];
  const start = now - WINDOW_MS;
  const shown = samples.filter((s) => s.t >= start);
  let max = 0;
  for (const s of shown) for (const line of series) max = Math.max(max, Number(s[line.field] ?? 0));
  const top10 = niceCeiling(max);

  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#e3e6eb';
  g.fillStyle = '#667085';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(left + plotW, y);
    g.stroke();
    g.fillText(formatNumber((top10 * i) / 4), left - 6, y);
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  for (let m = 15; m >= 0; m -= 5) {
    const x = left + plotW * (1 - (m * 60_000) / WINDOW_MS);
    g.fillText(m === 0 ? 'now' : `−${m} min`, x, top + plotH + 6);
  }

  const missing = series.every((line) => shown.every((s) => s[line.field] === null));
  if (missing && shown.length > 0) {
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText('Message rates need METRICS_ENABLED on this node', left + plotW / 2, top + plotH / 2);
  }
  for (const line of series) {
    g.strokeStyle = line.color;
    g.fillStyle = line.color;
    g.lineWidth = 2;
    g.beginPath();
    let drawing = false;
    let lastX = -1;
    let lastY = 0;
    for (const s of shown) {
      const value = s[line.field];
      if (value === null) {
        drawing = false;
        continue;
      }
      const x = left + (plotW * (s.t - start)) / WINDOW_MS;
      const y = top + plotH - (plotH * Number(value)) / top10;
      if (drawing) g.lineTo(x, y);
      else g.moveTo(x, y);
      drawing = true;
      lastX = x;
      lastY = y;
    }
    g.stroke();
    // The newest value as a dot, so a line of a few samples at the right edge still shows.
    if (lastX >= 0) {
      g.beginPath();
      g.arc(lastX, lastY, 3, 0, 2 * Math.PI);
      g.fill();
    }
  }
  g.textAlign = 'left';
  g.textBaseline = 'middle';
  let x = left;
  for (const line of series) {
    g.fillStyle = line.color;
    g.fillRect(x, 8, 10, 10);
    g.fillStyle = '#1c2330';
    g.fillText(line.label, x + 14, 13);
    x += g.measureText(line.label).width + 32;
  }
}

// The axis ends on a round number at or above the highest value (at least 1, so an idle app has a scale).
function niceCeiling(max: number): number {
  if (max <= 1) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= max) return step * magnitude;
  return 10 * magnitude;
}

/** 1234 → "1,234", 0.25 → "0.25". */
export function formatNumber(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: n < 10 ? 2 : 0 });
}
