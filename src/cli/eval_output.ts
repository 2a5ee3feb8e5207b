// Text outputs of `kinema eval`: the terminal tables, the `--json` document (snake_case keys, every number per
// video, per frame and per frame pair), the data handed to the HTML report, and an atomic file writer.
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { MAWE_COEFF } from '../metrics/mawe.js';
import { DEFAULT_ADAPTIVE_DETECTOR_OPTIONS } from '../metrics/scenecuts.js';
import type { EvalSettings, VideoEvaluation } from './eval.js';
import type { ReportDocument, ReportVideo } from './report.js';
import { KinemaError } from '../errors.js';

function fmt(v: number | null, digits: number): string {
  if (v === null || Number.isNaN(v)) return 'n/a';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  return v.toFixed(digits);
}

function flowSizeText(r: VideoEvaluation): string {
  return `${r.motion.flowWidth}x${r.motion.flowHeight}`;
}

/** Key/value rows describing one video (used for the terminal table and the report). */
export function metricRows(r: VideoEvaluation, withClip: boolean): [string, string][] {
  const m = r.motion;
  const rows: [string, string][] = [
    ['frames', String(r.frames)],
    ['fps', fmt(r.info.fps, r.info.fps % 1 === 0 ? 0 : 3)],
    ['size', `${r.info.width}x${r.info.height}`],
    [
      'SCuts',
      `${r.scenes.cuts.length}${r.scenes.cuts.length > 0 ? ` (at ${r.scenes.cuts.join(', ')})` : ''}`,
    ],
    ['MAWE', m.mawe === null ? 'n/a (no motion)' : fmt(m.mawe, 2)],
    [
      'flow smoothness',
      m.smoothness.smoothness === null ? 'n/a (needs 3 frames)' : fmt(m.smoothness.smoothness, 3),
    ],
    ['mean flow magnitude', `${fmt(m.meanFlowMagnitude, 3)} px at ${flowSizeText(r)}`],
  ];
  if (withClip) {
    rows.push(['CLIP score', r.clipScore === null ? 'n/a (no --prompt)' : fmt(r.clipScore, 2)]);
    rows.push(['frame consistency', fmt(r.frameConsistency, 4)]);
  }
  return rows;
}

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function mean(values: (number | null)[]): number | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Summary over videos: one row per video and a row of means. */
export function summaryTable(
  results: VideoEvaluation[],
  withClip: boolean,
): { header: string[]; rows: string[][] } {
  const header = ['video', 'frames', 'SCuts', 'MAWE', 'smoothness', 'flow px'];
  if (withClip) header.push('CLIP', 'consistency');
  const cols = (r: VideoEvaluation): (number | null)[] => [
    r.frames,
    r.scenes.cuts.length,
    r.motion.mawe,
    r.motion.smoothness.smoothness,
    r.motion.meanFlowMagnitude,
    ...(withClip ? [r.clipScore, r.frameConsistency] : []),
  ];
  const digits = [0, 0, 2, 3, 3, 2, 4];
  const row = (name: string, v: (number | null)[], meanRow: boolean): string[] => [
    name,
    ...v.map((x, i) => fmt(x, meanRow && i < 2 ? 2 : digits[i]!)),
  ];
  const rows = results.map((r) => row(basename(r.path), cols(r), false));
  const all = results.map(cols);
  rows.push(
    row(
      `mean (${results.length} videos)`,
      header.slice(1).map((_, i) => mean(all.map((c) => c[i]!))),
      true,
    ),
  );
  return { header, rows };
}

/** JSON numbers: NaN → null, ±Infinity → "Infinity"/"-Infinity" (JSON has no such numbers). */
function jsonScalar(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    return Number.isNaN(value) ? 'null' : value > 0 ? '"Infinity"' : '"-Infinity"';
  }
  return JSON.stringify(value ?? null);
}

/** Pretty JSON with arrays of scalars kept on one line (per-frame series stay readable). */
export function toJson(value: unknown, indent = ''): string {
  if (value === null || typeof value !== 'object') return jsonScalar(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object'))
      return `[${value.map(jsonScalar).join(', ')}]`;
    return `[\n${value.map((v) => inner + toJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${toJson(v, inner)}`).join(',\n')}\n${indent}}`;
}

function videoJson(r: VideoEvaluation): Record<string, unknown> {
  const m = r.motion;
  return {
    path: r.path,
    format: r.info.format,
    width: r.info.width,
    height: r.info.height,
    fps: r.info.fps,
    frames: r.frames,
    scuts: r.scenes.cuts.length,
    cuts: r.scenes.cuts,
    mawe: m.mawe,
    mawe_undefined_pairs: m.undefinedPairs,
    flow_smoothness: m.smoothness.smoothness,
    flow_magnitude_std: m.smoothness.meanMagnitudeStd,
    mean_flow_magnitude: m.meanFlowMagnitude,
    flow_size: [m.flowWidth, m.flowHeight],
    clip_score: r.clipScore,
    frame_consistency: r.frameConsistency,
    per_frame: {
      content_value: r.scenes.contentValues,
      adaptive_ratio: r.scenes.adaptiveRatios,
      clip_score: r.perFrameClipScore,
    },
    per_pair: { flow_magnitude: m.motions, warp_error: m.warpErrors, mawe_ratio: m.ratios },
  };
}

function settingsRows(s: EvalSettings): [string, string][] {
  return [
    [
      'flow',
      s.raftPath === null
        ? 'Farnebäck (classical, TypeScript)'
        : `RAFT ONNX ${s.raftPath} (input ${s.raftInputRange})`,
    ],
    ['flow / MAWE frame size', s.flowSize === null ? 'native' : `${s.flowSize[0]}x${s.flowSize[1]}`],
    ['MAWE coefficient c', String(MAWE_COEFF)],
    [
      'SCuts',
      `PySceneDetect AdaptiveDetector defaults (threshold ${DEFAULT_ADAPTIVE_DETECTOR_OPTIONS.adaptiveThreshold}, min scene ${DEFAULT_ADAPTIVE_DETECTOR_OPTIONS.minSceneLen})`,
    ],
    ['CLIP', s.clipDir ?? 'not used'],
    ['prompt', s.prompt ?? '(none)'],
  ];
}

/** Writes `data` to `path` through a temp file in the same folder and a rename (never a half-written file). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`);
  try {
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw new KinemaError(
      'OUTPUT_NOT_WRITABLE',
      `cannot write ${path}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

function reportVideo(r: VideoEvaluation, withClip: boolean): ReportVideo {
  return {
    path: r.path,
    width: r.info.width,
    height: r.info.height,
    metrics: metricRows(r, withClip),
    thumbnails: r.thumbnails,
    adaptiveRatios: r.scenes.adaptiveRatios.map((v) => (Number.isFinite(v) ? v : null)),
    adaptiveThreshold: DEFAULT_ADAPTIVE_DETECTOR_OPTIONS.adaptiveThreshold,
    cuts: r.scenes.cuts,
    flowMagnitudes: r.motion.motions,
    flowUnit: `px at ${flowSizeText(r)}`,
  };
}

function summaryJson(results: VideoEvaluation[]): Record<string, number | null> {
  return {
    videos: results.length,
    scuts: mean(results.map((r) => r.scenes.cuts.length)),
    mawe: mean(results.map((r) => r.motion.mawe)),
    flow_smoothness: mean(results.map((r) => r.motion.smoothness.smoothness)),
    mean_flow_magnitude: mean(results.map((r) => r.motion.meanFlowMagnitude)),
    clip_score: mean(results.map((r) => r.clipScore)),
    frame_consistency: mean(results.map((r) => r.frameConsistency)),
  };
}

type EvalErrors = { path: string; message: string }[];

/** The `--json` document: settings, every number per video (snake_case keys), summary means and errors. */
export function evalJsonDocument(
  s: EvalSettings,
  results: VideoEvaluation[],
  errors: EvalErrors,
): Record<string, unknown> {
  return {
    settings: {
      flow_method: s.raftPath === null ? 'farneback' : 'raft',
      raft_model: s.raftPath,
      raft_input_range: s.raftPath === null ? null : s.raftInputRange,
      flow_size: s.flowSize,
      mawe_coeff: MAWE_COEFF,
      clip_model: s.clipDir,
      prompt: s.prompt,
    },
    videos: results.map(videoJson),
    summary: results.length === 0 ? null : summaryJson(results),
    errors,
  };
}

/** The `--report` document (rendered by renderReport). */
export function evalReportDocument(
  s: EvalSettings,
  results: VideoEvaluation[],
  errors: EvalErrors,
): ReportDocument {
  const withClip = s.clipDir !== null;
  return {
    title: 'kinema eval report',
    settings: settingsRows(s),
    summary: results.length > 1 ? summaryTable(results, withClip) : null,
    videos: results.map((r) => reportVideo(r, withClip)),
    errors,
  };
}
