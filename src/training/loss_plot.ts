// Loss curves as PNG: the raw per-step loss (light) and a smoothed curve (dark) on labelled axes, drawn as SVG
// and rasterised by sharp. Smoothing is TensorBoard's debiased exponential moving average, so the first
// points are not pulled towards zero.
import sharp from 'sharp';
import { writeFileAtomic } from '../io/safetensors.js';
import { KinemaError } from '../errors.js';

export interface LossCurveOptions {
  /** Title drawn above the plot. */
  title?: string;
  /** Image size in pixels (default 800 × 450). */
  width?: number;
  height?: number;
  /** EMA weight of the smoothed curve, in [0, 1) (0 = no smoothing); default min(0.95, 1 − 20 / steps). */
  smoothing?: number;
  /** 'auto' (default): logarithmic when every loss is positive and they span more than a factor of 10. */
  yScale?: 'linear' | 'log' | 'auto';
  /** Step number of the first loss (default 1). */
  firstStep?: number;
}

/** TensorBoard's smoothing: s_t = w·s_{t−1} + (1−w)·x_t, divided by (1 − w^t) to remove the zero-start bias. */
export function smoothLosses(losses: readonly number[], weight = 0.9): number[] {
  if (!(weight >= 0 && weight < 1))
    throw new KinemaError('PLOT_BAD_INPUT', `smoothing weight must be in [0, 1), got ${weight}`);
  const out: number[] = [];
  let acc = 0;
  let count = 0;
  for (const x of losses) {
    if (!Number.isFinite(x)) {
      out.push(Number.NaN);
      continue;
    }
    count++;
    acc = weight * acc + (1 - weight) * x;
    out.push(acc / (1 - weight ** count));
  }
  return out;
}

interface Axis {
  toPixel(v: number): number;
  ticks: number[];
}

function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

function linearAxis(lo: number, hi: number, p0: number, p1: number, ticks: number): Axis {
  if (hi <= lo) hi = lo + (Math.abs(lo) || 1) * 0.1;
  const step = niceStep(hi - lo, ticks);
  const values: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) values.push(v);
  return { toPixel: (v) => p0 + ((v - lo) / (hi - lo)) * (p1 - p0), ticks: values };
}

function logAxis(lo: number, hi: number, p0: number, p1: number): Axis {
  const a = Math.log10(lo);
  const b = Math.log10(hi) > a ? Math.log10(hi) : a + 1;
  const values: number[] = [];
  for (let e = Math.floor(a); e <= Math.ceil(b); e++) {
    for (const m of b - a > 3 ? [1] : [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) values.push(v);
    }
  }
  return { toPixel: (v) => p0 + ((Math.log10(v) - a) / (b - a)) * (p1 - p0), ticks: values };
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(0) : String(Number(v.toPrecision(3)));
}

function polyline(xs: number[], ys: number[], color: string, width: number): string {
  const runs: string[][] = [[]];
  xs.forEach((x, i) => {
    const y = ys[i]!;
    if (Number.isFinite(y)) runs[runs.length - 1]!.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    else if (runs[runs.length - 1]!.length > 0) runs.push([]);
  });
  return runs
    .filter((r) => r.length > 0)
    .map((r) => `<polyline points="${r.join(' ')}" fill="none" stroke="${color}" stroke-width="${width}"/>`)
    .join('');
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The plot as an SVG document. */
export function lossCurveSvg(losses: readonly number[], opts: LossCurveOptions = {}): string {
  const width = opts.width ?? 800;
  const height = opts.height ?? 450;
  const finite = losses.filter((v) => Number.isFinite(v));
  if (finite.length === 0)
    throw new KinemaError('PLOT_BAD_INPUT', 'loss curve: no finite loss values to plot');
  const weight = opts.smoothing ?? Math.max(0, Math.min(0.95, 1 - 20 / losses.length));
  const smooth = smoothLosses(losses, weight);
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const log = opts.yScale === 'log' || (opts.yScale !== 'linear' && lo > 0 && hi / lo > 10);
  if (log && lo <= 0)
    throw new KinemaError('PLOT_BAD_INPUT', `loss curve: a log scale needs positive losses (minimum ${lo})`);
  const m = { left: 70, right: 20, top: 40, bottom: 45 };
  const first = opts.firstStep ?? 1;
  const last = first + Math.max(1, losses.length - 1);
  const xAxis = linearAxis(first, last, m.left, width - m.right, 8);
  const yAxis = log
    ? logAxis(lo, hi, height - m.bottom, m.top)
    : linearAxis(lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05, height - m.bottom, m.top, 6);
  const xs = losses.map((_, i) => xAxis.toPixel(first + i));
  const clampY = (v: number): number => (log && v <= 0 ? Number.NaN : yAxis.toPixel(v));
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  for (const t of yAxis.ticks) {
    const y = yAxis.toPixel(t).toFixed(1);
    parts.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${m.left - 6}" y="${y}" text-anchor="end" dy="4">${formatTick(t)}</text>`);
  }
  for (const t of xAxis.ticks) {
    const x = xAxis.toPixel(t).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${m.top}" y2="${height - m.bottom}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${x}" y="${height - m.bottom + 16}" text-anchor="middle">${formatTick(t)}</text>`);
  }
  parts.push(polyline(xs, losses.map(clampY), '#9ecae1', 1));
  parts.push(polyline(xs, smooth.map(clampY), '#08519c', 2));
  parts.push(
    `<rect x="${m.left}" y="${m.top}" width="${width - m.left - m.right}" height="${height - m.top - m.bottom}" fill="none" stroke="#444"/>`,
    `<text x="${width / 2}" y="${height - 8}" text-anchor="middle">step</text>`,
    `<text x="16" y="${height / 2}" text-anchor="middle" transform="rotate(-90 16 ${height / 2})">loss${log ? ' (log scale)' : ''}</text>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(opts.title ?? 'training loss')}</text>`,
    `<text x="${width - m.right - 4}" y="${m.top + 16}" text-anchor="end" fill="#08519c">smoothed (EMA ${Number(weight.toFixed(3))}) — raw in light blue</text>`,
    '</svg>',
  );
  return parts.join('\n');
}

/** Renders the loss curve and writes it as a PNG (atomically). */
export async function writeLossCurvePng(
  path: string,
  losses: readonly number[],
  opts: LossCurveOptions = {},
): Promise<void> {
  const png = await sharp(Buffer.from(lossCurveSvg(losses, opts)))
    .png()
    .toBuffer();
  writeFileAtomic(path, png);
}
