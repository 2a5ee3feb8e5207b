// Self-contained HTML report for `kinema eval`: per video a metrics table, a contact sheet of frames (one PNG
// made with sharp, inlined as base64) and inline-SVG plots of the per-frame scene-change score (AdaptiveDetector
// adaptive ratio with its threshold and the detected cuts) and of the mean optical-flow magnitude over time.
// No external resources, no scripts.
import sharp from 'sharp';
import { KinemaError } from '../errors.js';

export interface ReportThumbnail {
  /** Frame index in the video. */
  index: number;
  /** RGB24 frame at the video's size. */
  rgb: Uint8Array;
}

export interface ReportVideo {
  path: string;
  width: number;
  height: number;
  /** Rows of the metrics table, already formatted. */
  metrics: [string, string][];
  thumbnails: ReportThumbnail[];
  /** Adaptive ratio per frame (null where the detector computes none). */
  adaptiveRatios: (number | null)[];
  adaptiveThreshold: number;
  cuts: number[];
  /** Mean flow magnitude per frame pair t → t+1. */
  flowMagnitudes: number[];
  /** Unit text for the flow axis, e.g. 'px (flow at 720x720)'. */
  flowUnit: string;
}

export interface ReportDocument {
  title: string;
  /** Key/value rows describing how the numbers were computed. */
  settings: [string, string][];
  /** Optional summary table: header row then rows (all formatted). */
  summary: { header: string[]; rows: string[][] } | null;
  videos: ReportVideo[];
  errors: { path: string; message: string }[];
}

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** Grid of thumbnails (up to `columns` per row, `thumbWidth` wide) as a PNG. */
export async function contactSheet(
  thumbs: readonly ReportThumbnail[],
  width: number,
  height: number,
  opts: { columns?: number; thumbWidth?: number; gap?: number } = {},
): Promise<Buffer> {
  if (thumbs.length === 0) throw new KinemaError('REPORT_NO_FRAMES', 'contact sheet: no frames');
  const tw = Math.max(1, Math.min(opts.thumbWidth ?? 192, width));
  const th = Math.max(1, Math.round((height * tw) / width));
  const cols = Math.min(opts.columns ?? 6, thumbs.length);
  const rows = Math.ceil(thumbs.length / cols);
  const gap = opts.gap ?? 4;
  const tiles = await Promise.all(
    thumbs.map((t) =>
      sharp(t.rgb, { raw: { width, height, channels: 3 } })
        .resize(tw, th, { fit: 'fill' })
        .png()
        .toBuffer(),
    ),
  );
  return sharp({
    create: {
      width: cols * tw + (cols + 1) * gap,
      height: rows * th + (rows + 1) * gap,
      channels: 3,
      background: { r: 32, g: 32, b: 32 },
    },
  })
    .composite(
      tiles.map((input, i) => ({
        input,
        left: gap + (i % cols) * (tw + gap),
        top: gap + Math.floor(i / cols) * (th + gap),
      })),
    )
    .png()
    .toBuffer();
}

export interface ChartSeries {
  values: readonly (number | null)[];
  color: string;
  label: string;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  /** x value of the first point (e.g. 0 for frames, 0.5 for frame pairs). */
  xOffset?: number;
  threshold?: { value: number; label: string };
  /** x positions marked with vertical lines (e.g. scene cuts). */
  markers?: { x: number[]; color: string; label: string };
  width?: number;
  height?: number;
  /** 'log1p' plots log(1 + y) (for values spanning 0..255 with a threshold near 3). Default 'linear'. */
  yScale?: 'linear' | 'log1p';
}

/** A "nice" upper bound for an axis. */
function niceCeil(v: number): number {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtTick(v: number): string {
  return Math.abs(v) >= 100 || Number.isInteger(v) ? v.toFixed(0) : Number(v.toPrecision(3)).toString();
}

interface Frame {
  left: number;
  top: number;
  pw: number;
  ph: number;
  sx: (x: number) => number;
  sy: (y: number) => number;
}

/** Plot area, coordinate transforms and y ticks of a chart. */
function chartFrame(o: ChartOptions, W: number, H: number): { f: Frame; xMax: number; ticks: number[] } {
  const m = { left: 56, right: 16, top: 28, bottom: 40 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const n = Math.max(1, ...o.series.map((s) => s.values.length));
  const xMax = Math.max(1, (o.xOffset ?? 0) + n - 1);
  const finite = o.series.flatMap((s) =>
    s.values.filter((v): v is number => v !== null && Number.isFinite(v)),
  );
  const log = o.yScale === 'log1p';
  const dataMax = Math.max(o.threshold?.value ?? 0, ...finite, 0);
  const yMax = log ? Math.max(dataMax, 1) : niceCeil(dataMax * 1.05);
  const tf = (y: number): number => (log ? Math.log1p(Math.max(0, y)) : y);
  const ticks = log
    ? [0, 1, 3, 10, 30, 100, 300, 1000].filter((t) => t <= yMax)
    : [0, 1, 2, 3, 4].map((i) => (yMax * i) / 4);
  if (log && yMax >= 1.5 * ticks[ticks.length - 1]!) ticks.push(yMax);
  const f: Frame = {
    left: m.left,
    top: m.top,
    pw,
    ph,
    sx: (x) => m.left + (x / xMax) * pw,
    sy: (y) => m.top + ph - (tf(Math.min(y, yMax)) / tf(yMax)) * ph,
  };
  return { f, xMax, ticks };
}

/** Line chart as an inline SVG string. Null / non-finite values break the line. */
export function lineChartSvg(o: ChartOptions): string {
  const W = o.width ?? 760;
  const H = o.height ?? 220;
  const { f, xMax, ticks } = chartFrame(o, W, H);
  const right = f.left + f.pw;
  const bottom = f.top + f.ph;
  const parts = [
    `<rect x="${f.left}" y="${f.top}" width="${f.pw}" height="${f.ph}" fill="#fff" stroke="#bbb"/>`,
  ];
  for (const v of ticks) {
    const y = f.sy(v).toFixed(1);
    parts.push(`<line x1="${f.left}" x2="${right}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(
      `<text x="${f.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmtTick(v)}</text>`,
    );
  }
  const xStep = niceCeil(xMax / 8);
  for (let x = 0; x <= xMax; x += xStep) {
    parts.push(
      `<text x="${f.sx(x).toFixed(1)}" y="${bottom + 16}" text-anchor="middle">${fmtTick(x)}</text>`,
    );
  }
  for (const x of o.markers?.x ?? []) {
    const px = f.sx(x).toFixed(1);
    const color = o.markers!.color;
    parts.push(
      `<line x1="${px}" x2="${px}" y1="${f.top}" y2="${bottom}" stroke="${color}" stroke-width="1.5"/>`,
    );
  }
  if (o.threshold !== undefined) {
    const y = f.sy(o.threshold.value).toFixed(1);
    parts.push(
      `<line x1="${f.left}" x2="${right}" y1="${y}" y2="${y}" stroke="#d33" stroke-dasharray="6 4"/>`,
    );
  }
  for (const s of o.series) parts.push(...seriesPaths(s, o.xOffset ?? 0, f.sx, f.sy));
  parts.push(legend(o, f.left, W));
  parts.push(
    `<text x="${f.left + f.pw / 2}" y="${H - 6}" text-anchor="middle">${escapeHtml(o.xLabel)}</text>`,
  );
  const yl = escapeHtml(o.yLabel);
  parts.push(
    `<text transform="translate(14 ${f.top + f.ph / 2}) rotate(-90)" text-anchor="middle">${yl}</text>`,
  );
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" ` +
    `font-family="sans-serif" font-size="11" role="img" aria-label="${escapeHtml(o.title)}">` +
    `<title>${escapeHtml(o.title)}</title>${parts.join('')}</svg>`
  );
}

function seriesPaths(
  s: ChartSeries,
  x0: number,
  sx: (x: number) => number,
  sy: (y: number) => number,
): string[] {
  const out: string[] = [];
  let run: string[] = [];
  const flush = (): void => {
    if (run.length === 1)
      out.push(
        `<circle cx="${run[0]!.split(',')[0]}" cy="${run[0]!.split(',')[1]}" r="1.5" fill="${s.color}"/>`,
      );
    if (run.length > 1)
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${run.join(' ')}"/>`);
    run = [];
  };
  s.values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) flush();
    else run.push(`${sx(x0 + i).toFixed(1)},${sy(v).toFixed(1)}`);
  });
  flush();
  return out;
}

function legend(o: ChartOptions, left: number, width: number): string {
  const items: [string, string, boolean][] = o.series.map((s) => [s.color, s.label, false]);
  if (o.threshold !== undefined) items.push(['#d33', o.threshold.label, true]);
  if (o.markers !== undefined && o.markers.x.length > 0)
    items.push([o.markers.color, o.markers.label, false]);
  const parts = [`<text x="${left}" y="14" font-weight="bold">${escapeHtml(o.title)}</text>`];
  let x = Math.max(left + 8 * o.title.length + 24, width / 3);
  for (const [color, label, dashed] of items) {
    const dash = dashed ? ' stroke-dasharray="6 4"' : '';
    parts.push(`<line x1="${x}" x2="${x + 18}" y1="10" y2="10" stroke="${color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${x + 22}" y="14">${escapeHtml(label)}</text>`);
    x += 30 + 7 * label.length;
  }
  return parts.join('');
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px}h2{font-size:17px;margin-top:36px;word-break:break-all}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 10px;text-align:left}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
section{background:#fff;border:1px solid #e4e4e4;border-radius:6px;padding:4px 16px 16px;margin-bottom:24px}
img{max-width:100%;image-rendering:auto}.caption{color:#666;font-size:12px}.error{color:#b00}`;

function table(header: string[] | null, rows: string[][]): string {
  const head = header === null ? '' : `<tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const body = rows
    .map(
      (r) =>
        `<tr>${r.map((c, i) => `<td${i > 0 ? ' class="num"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`,
    )
    .join('');
  return `<table>${head}${body}</table>`;
}

async function videoSection(v: ReportVideo): Promise<string> {
  const parts = [`<section><h2>${escapeHtml(v.path)}</h2>`, table(null, v.metrics)];
  if (v.thumbnails.length > 0) {
    const png = await contactSheet(v.thumbnails, v.width, v.height);
    parts.push(
      `<img alt="contact sheet of ${escapeHtml(v.path)}" src="data:image/png;base64,${png.toString('base64')}">`,
    );
    parts.push(`<div class="caption">frames ${v.thumbnails.map((t) => t.index).join(', ')}</div>`);
  }
  parts.push(
    lineChartSvg({
      title: 'Scene-change score',
      xLabel: 'frame',
      yLabel: 'adaptive ratio (log scale)',
      yScale: 'log1p',
      series: [{ values: v.adaptiveRatios, color: '#1f77b4', label: 'adaptive ratio' }],
      threshold: { value: v.adaptiveThreshold, label: `threshold ${v.adaptiveThreshold}` },
      markers: { x: v.cuts, color: '#ff7f0e', label: 'detected cut' },
    }),
  );
  parts.push(
    lineChartSvg({
      title: 'Optical-flow magnitude',
      xLabel: 'frame pair (t → t+1)',
      yLabel: `mean |flow|, ${v.flowUnit}`,
      series: [{ values: v.flowMagnitudes, color: '#2ca02c', label: 'mean flow magnitude' }],
      xOffset: 0.5,
    }),
  );
  parts.push('</section>');
  return parts.join('\n');
}

/** The whole report as one HTML string. */
export async function renderReport(doc: ReportDocument): Promise<string> {
  const sections: string[] = [];
  for (const v of doc.videos) sections.push(await videoSection(v));
  const errors =
    doc.errors.length === 0
      ? ''
      : `<h2>Errors</h2><ul>${doc.errors.map((e) => `<li class="error">${escapeHtml(e.path)}: ${escapeHtml(e.message)}</li>`).join('')}</ul>`;
  const summary =
    doc.summary === null ? '' : `<h2>Summary</h2>${table(doc.summary.header, doc.summary.rows)}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(doc.title)}</title>
<style>${STYLE}</style></head><body>
<h1>${escapeHtml(doc.title)}</h1>
${table(null, doc.settings)}
${summary}
${errors}
${sections.join('\n')}
</body></html>
`;
}
