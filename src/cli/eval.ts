// `kinema eval <video...>`: video quality metrics for generated videos — SCuts (PySceneDetect AdaptiveDetector),
// MAWE and flow smoothness (StreamingT2V's definitions, see src/metrics/), mean optical-flow magnitude, and,
// when a CLIP model is available, CLIP score and frame consistency. Prints a table per video and a summary;
// optionally writes all numbers as JSON and a self-contained HTML report.
//
// Each video is decoded once; frames stream through the scene-cut detector, the flow analysis and CLIP.
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { openVideo, type VideoInfo } from '../io/video/index.js';
import { ClipVideoScorer, type ClipEmbedder } from '../metrics/clip_metrics.js';
import { MotionAnalyzer, type MotionResult } from '../metrics/mawe.js';
import { FarnebackEstimator, type FlowEstimator } from '../metrics/optical_flow.js';
import { RaftEstimator } from '../metrics/raft.js';
import { detectSceneCuts, type SceneCutResult } from '../metrics/scenecuts.js';
import { Progress } from './progress.js';
import {
  evalJsonDocument,
  evalReportDocument,
  metricRows,
  renderTable,
  summaryTable,
  toJson,
  writeFileAtomic,
} from './eval_output.js';
import { renderReport, type ReportThumbnail } from './report.js';
import { KinemaError } from '../errors.js';

/** Loads a CLIP model from a folder; registered by whoever provides CLIP (see registerClipLoader). */
export type ClipLoader = (dir: string) => Promise<ClipEmbedder & { dispose?(): Promise<void> }>;

let registeredClipLoader: ClipLoader | null = null;

/** Makes `--clip <dir>` available: `loader` turns the folder into a ClipEmbedder. Pass null to unregister. */
export function registerClipLoader(loader: ClipLoader | null): void {
  registeredClipLoader = loader;
}

const VIDEO_EXTENSIONS = new Set(['.mp4', '.m4v', '.mov', '.webm', '.mkv', '.gif', '.webp']);
const FRAME_FILE = /^frame_\d{5,}\.png$/;

export interface EvalSettings {
  prompt: string | null;
  clipDir: string | null;
  raftPath: string | null;
  raftInputRange: '0-255' | '-1-1';
  /** Frame size for flow / MAWE; null = native. */
  flowSize: [number, number] | null;
  thumbnails: number;
  progress: boolean;
}

export interface VideoEvaluation {
  path: string;
  info: VideoInfo;
  frames: number;
  scenes: SceneCutResult;
  motion: MotionResult;
  clipScore: number | null;
  frameConsistency: number | null;
  perFrameClipScore: number[];
  thumbnails: ReportThumbnail[];
}

async function statOrNull(path: string): Promise<Awaited<ReturnType<typeof stat>> | null> {
  try {
    return await stat(path);
  } catch {
    return null;
  }
}

/** Videos named by one argument: a video file, a PNG-frame folder, a folder of videos, or a .txt list. */
async function expandOne(arg: string, seen: Set<string>): Promise<string[]> {
  const st = await statOrNull(arg);
  if (st === null)
    throw new KinemaError(
      'EVAL_BAD_INPUT',
      `cannot read '${arg}': no such file or folder (or no permission)`,
    );
  if (st.isFile() && extname(arg).toLowerCase() === '.txt') {
    const abs = resolve(arg);
    if (seen.has(abs)) throw new KinemaError('EVAL_BAD_INPUT', `list '${arg}' includes itself`);
    seen.add(abs);
    let text: string;
    try {
      text = await readFile(arg, 'utf8');
    } catch (err) {
      throw new KinemaError(
        'EVAL_BAD_INPUT',
        `cannot read list '${arg}': ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const lines = text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const out: string[] = [];
    for (const line of lines) out.push(...(await expandOne(resolve(dirname(arg), line), seen)));
    if (out.length === 0) throw new KinemaError('EVAL_BAD_INPUT', `list '${arg}' names no videos`);
    return out;
  }
  if (!st.isDirectory()) return [arg];
  let names: string[];
  try {
    names = (await readdir(arg)).sort();
  } catch (err) {
    throw new KinemaError(
      'EVAL_BAD_INPUT',
      `cannot read folder '${arg}': ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (names.some((n) => FRAME_FILE.test(n))) return [arg];
  const out: string[] = [];
  for (const n of names) {
    const p = join(arg, n);
    if (VIDEO_EXTENSIONS.has(extname(n).toLowerCase())) out.push(p);
    else if ((await statOrNull(p))?.isDirectory() && (await readdir(p)).some((f) => FRAME_FILE.test(f)))
      out.push(p);
  }
  if (out.length === 0)
    throw new KinemaError('EVAL_BAD_INPUT', `folder '${arg}' has no videos and no frame_NNNNN.png frames`);
  return out;
}

/** Expands CLI arguments to the list of videos to evaluate (in order, duplicates kept once). */
export async function expandInputs(args: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const a of args) out.push(...(await expandOne(a, new Set())));
  return [...new Set(out)];
}

/** Keeps up to `max` frames spread over a video of unknown length (stride doubling). */
class FrameSampler {
  private stride = 1;
  private kept: ReportThumbnail[] = [];

  constructor(private readonly max: number) {}

  offer(index: number, rgb: Uint8Array): void {
    if (this.max === 0 || index % this.stride !== 0) return;
    this.kept.push({ index, rgb: rgb.slice() });
    if (this.kept.length >= 2 * this.max) {
      this.stride *= 2;
      this.kept = this.kept.filter((k) => k.index % this.stride === 0);
    }
  }

  pick(): ReportThumbnail[] {
    const n = this.kept.length;
    if (n <= this.max) return this.kept;
    return Array.from({ length: this.max }, (_, i) => this.kept[Math.round((i * (n - 1)) / (this.max - 1))]!);
  }
}

interface EvalContext {
  settings: EvalSettings;
  raft: RaftEstimator | null;
  embedder: (ClipEmbedder & { dispose?(): Promise<void> }) | null;
}

/** Decodes one video once and computes all its metrics. */
export async function evaluateVideo(path: string, ctx: EvalContext): Promise<VideoEvaluation> {
  const reader = await openVideo(path);
  const { info } = reader;
  const estimator: FlowEstimator = ctx.raft ?? new FarnebackEstimator();
  let progress: Progress | null = null;
  try {
    const motion = new MotionAnalyzer(info.width, info.height, { estimator, size: ctx.settings.flowSize });
    const prompt = ctx.settings.prompt ?? undefined;
    const clip =
      ctx.embedder === null ? null : new ClipVideoScorer(ctx.embedder, info.width, info.height, { prompt });
    const sampler = new FrameSampler(ctx.settings.thumbnails);
    if (ctx.settings.progress)
      progress = new Progress({ label: basename(path), total: info.frameCount, unit: 'frames' });
    let count = 0;
    async function* tap(): AsyncGenerator<Uint8Array> {
      for await (const f of reader.frames()) {
        await motion.push(f);
        if (clip !== null) await clip.push(f);
        sampler.offer(count, f);
        count++;
        progress?.tick();
        yield f;
      }
    }
    const scenes = await detectSceneCuts(tap(), info.width, info.height);
    if (count === 0) throw new KinemaError('EVAL_BAD_INPUT', `${path}: the video has no frames`);
    if (count === 1)
      throw new KinemaError(
        'EVAL_BAD_INPUT',
        `${path}: the video has only 1 frame; the metrics compare consecutive frames`,
      );
    const scores = clip === null ? null : await clip.finish();
    progress?.finish();
    return {
      path,
      info,
      frames: count,
      scenes,
      motion: motion.result(),
      clipScore: scores?.clipScore ?? null,
      frameConsistency: scores?.frameConsistency ?? null,
      perFrameClipScore: scores?.perFrameClipScore ?? [],
      thumbnails: sampler.pick(),
    };
  } finally {
    progress?.abandon();
    await reader.close();
    if (estimator !== ctx.raft) await estimator.dispose();
  }
}

// ---------- command ----------

/** Commander turns a null option value into '', so 'native' stays a string here. */
function parseFlowSize(v: string): [number, number] | 'native' {
  if (v === 'native') return 'native';
  const m = /^(\d+)(?:x(\d+))?$/.exec(v);
  const w = m === null ? NaN : Number(m[1]);
  const h = m === null ? NaN : Number(m[2] ?? m[1]);
  if (!(w >= 16 && h >= 16 && w <= 8192 && h <= 8192)) {
    throw new InvalidArgumentError("expected 'native', N (NxN) or WxH, each side 16..8192");
  }
  return [w, h];
}

function parseCount(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 200) throw new InvalidArgumentError('expected an integer 0..200');
  return n;
}

interface CliOptions {
  prompt?: string;
  clip?: string;
  raft?: string;
  raftInputRange: '0-255' | '-1-1';
  flowSize: [number, number] | 'native';
  json?: string;
  report?: string;
  thumbnails: number;
  progress: boolean;
}

async function loadModels(s: EvalSettings, clipLoader: ClipLoader | null): Promise<EvalContext> {
  let embedder: (ClipEmbedder & { dispose?(): Promise<void> }) | null = null;
  if (s.clipDir !== null) {
    if (clipLoader === null) {
      throw new KinemaError(
        'EVAL_BAD_INPUT',
        '--clip: no CLIP model loader is registered in this build, so CLIP metrics are unavailable',
      );
    }
    if ((await statOrNull(s.clipDir))?.isDirectory() !== true)
      throw new KinemaError('EVAL_BAD_INPUT', `--clip: '${s.clipDir}' is not a folder`);
    try {
      embedder = await clipLoader(s.clipDir);
    } catch (err) {
      throw new KinemaError(
        'EVAL_BAD_INPUT',
        `--clip ${s.clipDir}: cannot load the CLIP model: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  const raft =
    s.raftPath === null ? null : await RaftEstimator.load(s.raftPath, { inputRange: s.raftInputRange });
  return { settings: s, raft, embedder };
}

async function writeOutputs(
  o: CliOptions,
  s: EvalSettings,
  results: VideoEvaluation[],
  errors: { path: string; message: string }[],
): Promise<void> {
  if (o.json !== undefined)
    await writeFileAtomic(o.json, `${toJson(evalJsonDocument(s, results, errors))}\n`);
  if (o.report !== undefined && results.length > 0) {
    await writeFileAtomic(o.report, await renderReport(evalReportDocument(s, results, errors)));
  }
}

interface Output {
  write(text: string): unknown;
}

async function runEval(
  args: string[],
  o: CliOptions,
  clipLoader: ClipLoader | null,
  out: Output,
  err: Output,
): Promise<void> {
  const settings: EvalSettings = {
    prompt: o.prompt ?? null,
    clipDir: o.clip ?? null,
    raftPath: o.raft ?? null,
    raftInputRange: o.raftInputRange,
    flowSize: o.flowSize === 'native' ? null : o.flowSize,
    thumbnails: o.report === undefined ? 0 : o.thumbnails,
    progress: o.progress,
  };
  const videos = await expandInputs(args);
  if (settings.prompt !== null && settings.clipDir === null) {
    err.write(
      'kinema eval: note: --prompt is only scored with --clip <dir>; no CLIP score will be computed\n',
    );
  }
  const ctx = await loadModels(settings, clipLoader);
  const results: VideoEvaluation[] = [];
  const errors: { path: string; message: string }[] = [];
  const withClip = settings.clipDir !== null;
  try {
    for (const path of videos) {
      try {
        const r = await evaluateVideo(path, ctx);
        results.push(r);
        out.write(`\n${path}\n${renderTable(['metric', 'value'], metricRows(r, withClip))}\n`);
      } catch (e) {
        const raw = e instanceof Error ? e.message : String(e);
        const message = raw.startsWith(path) ? raw : `${path}: ${raw}`;
        errors.push({ path, message });
        err.write(`kinema eval: ${message}\n`);
      }
    }
  } finally {
    await ctx.raft?.dispose();
    await ctx.embedder?.dispose?.();
  }
  if (results.length > 1) {
    const t = summaryTable(results, withClip);
    out.write(`\nSummary\n${renderTable(t.header, t.rows)}\n`);
  }
  await writeOutputs(o, settings, results, errors);
  if (errors.length > 0)
    throw new KinemaError(
      'EVAL_FAILED',
      `${errors.length} of ${videos.length} video(s) could not be evaluated`,
    );
}

/**
 * The `eval` subcommand. `opts.clipLoader` overrides the loader registered with registerClipLoader; `stdout` /
 * `stderr` redirect the tables and messages (progress always goes to process.stderr unless --no-progress).
 */
export function evalCommand(
  opts: { clipLoader?: ClipLoader; stdout?: Output; stderr?: Output } = {},
): Command {
  return new Command('eval')
    .description('Compute video metrics (SCuts, MAWE, flow smoothness, CLIP score) for generated videos')
    .argument(
      '<videos...>',
      'video files, PNG-frame folders (frame_NNNNN.png), folders of videos, or .txt lists',
    )
    .option('--prompt <text>', 'text prompt for the CLIP score (needs --clip)')
    .option('--clip <dir>', 'CLIP model folder: adds CLIP score and frame consistency')
    .option('--raft <model.onnx>', 'use a RAFT ONNX model for optical flow instead of the built-in Farnebäck')
    .addOption(
      new Option('--raft-input-range <range>', 'pixel range the RAFT model expects')
        .choices(['0-255', '-1-1'])
        .default('0-255'),
    )
    .option(
      '--flow-size <size>',
      "frame size for flow and MAWE: 'native', N or WxH (StreamingT2V: 720)",
      parseFlowSize,
      [720, 720],
    )
    .option('--json <out.json>', 'write all numbers (per video, per frame, summary) as JSON')
    .option('--report <out.html>', 'write a self-contained HTML report with contact sheets and plots')
    .option('--thumbnails <n>', 'frames per contact sheet in the report', parseCount, 12)
    .option('--no-progress', 'do not show progress on stderr')
    .action(async (videos: string[], o: CliOptions) => {
      const clipLoader = opts.clipLoader ?? registeredClipLoader;
      await runEval(videos, o, clipLoader, opts.stdout ?? process.stdout, opts.stderr ?? process.stderr);
    });
}
