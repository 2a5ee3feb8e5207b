// SCuts: a port of PySceneDetect's AdaptiveDetector (v0.7.1, as called by `scenedetect.detect(path,
// AdaptiveDetector())`), the detector behind StreamingT2V's SCuts metric (number of cuts).
//
// Per frame: optional downscale (SceneManager's auto factor, cv2.resize INTER_LINEAR), OpenCV 8-bit HSV, then
// delta_X = mean |X_t - X_{t-1}| for hue, saturation and value (hue is not circular), content_val = weighted mean.
// Frame 0 scores 0.0 (kept in the window). Frame t is judged once frame t+w is read: ratio = score_t / mean of the
// w scores on each side (255 when that mean is ~0 and score_t ≥ min_content_val, else 0), capped at 255. A cut
// at t needs ratio ≥ adaptive_threshold, content_val ≥ min_content_val and (t + w) − last_cut ≥ min_scene_len.

import { openVideo } from '../io/video/index.js';
import { resizeLinear, rgbToHsvPlanes } from './color.js';
import { KinemaError } from '../errors.js';

export interface AdaptiveDetectorOptions {
  adaptiveThreshold: number;
  minSceneLen: number;
  windowWidth: number;
  minContentVal: number;
  weights: { deltaHue: number; deltaSat: number; deltaLum: number; deltaEdges: number };
  /** 'auto' = SceneManager's auto-downscale (factor max(w,h)/256 when max(w,h) ≥ 256); a number ≥ 1 = fixed factor. */
  downscale: number | 'auto';
}

export interface SceneCutResult {
  /** Frame index where each new scene starts (0-based, PySceneDetect numbering). SCuts = cuts.length. */
  cuts: number[];
  /** content_val per frame (frame 0 has nothing to compare with and scores 0, as in the detector). */
  contentValues: number[];
  /** adaptive_ratio per frame; NaN where PySceneDetect computes none (the first and last windowWidth frames). */
  adaptiveRatios: number[];
  /** Downscale factor applied (1 = none). */
  downscale: number;
  /** Score components per frame (0 at frame 0). */
  components: { deltaHue: number[]; deltaSat: number[]; deltaLum: number[] };
  /** Frame size the detector saw after downscaling. */
  processedWidth: number;
  processedHeight: number;
}

export const DEFAULT_ADAPTIVE_DETECTOR_OPTIONS: AdaptiveDetectorOptions = {
  adaptiveThreshold: 3.0,
  minSceneLen: 15,
  windowWidth: 2,
  minContentVal: 15.0,
  weights: { deltaHue: 1.0, deltaSat: 1.0, deltaLum: 1.0, deltaEdges: 0.0 },
  downscale: 'auto',
};

/** PySceneDetect's compute_downscale_factor applied to the larger side (effective width 256). */
export function autoDownscaleFactor(width: number, height: number): number {
  const side = Math.max(width, height);
  return side < 256 ? 1 : side / 256;
}

/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function resolveOptions(opts: Partial<AdaptiveDetectorOptions> | undefined): AdaptiveDetectorOptions {
  const o: AdaptiveDetectorOptions = {
    ...DEFAULT_ADAPTIVE_DETECTOR_OPTIONS,
    ...opts,
    weights: { ...DEFAULT_ADAPTIVE_DETECTOR_OPTIONS.weights, ...opts?.weights },
  };
  if (!Number.isInteger(o.windowWidth) || o.windowWidth < 1) {
    throw new KinemaError('METRIC_BAD_INPUT', `windowWidth must be an integer ≥ 1, got ${o.windowWidth}`);
  }
  if (!Number.isFinite(o.minSceneLen) || o.minSceneLen < 0) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `minSceneLen must be a number of frames ≥ 0, got ${o.minSceneLen}`,
    );
  }
  if (o.downscale !== 'auto' && !(Number.isFinite(o.downscale) && o.downscale >= 1)) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `downscale must be 'auto' or a number ≥ 1, got ${String(o.downscale)}`,
    );
  }
  const w = o.weights;
  if (w.deltaEdges !== 0) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      'weights.deltaEdges must be 0: the Canny edge component is not implemented',
    );
  }
  if (Math.abs(w.deltaHue) + Math.abs(w.deltaSat) + Math.abs(w.deltaLum) === 0) {
    throw new KinemaError('METRIC_BAD_INPUT', 'weights must not all be 0');
  }
  return o;
}

/** Sum |a-b| over a plane, divided by the pixel count (numpy int32 sum / float). */
function meanPixelDistance(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    sum += d < 0 ? -d : d;
  }
  return sum / a.length;
}

interface HsvFrame {
  hue: Uint8Array;
  sat: Uint8Array;
  lum: Uint8Array;
}

/** Streaming AdaptiveDetector state. */
class AdaptiveDetector {
  readonly result: SceneCutResult;
  private prev: HsvFrame | null = null;
  private readonly window: { frame: number; score: number }[] = [];
  private lastCut = 0;
  private frame = 0;

  constructor(
    private readonly o: AdaptiveDetectorOptions,
    private readonly width: number,
    private readonly height: number,
  ) {
    const factor = o.downscale === 'auto' ? autoDownscaleFactor(width, height) : o.downscale;
    const scaled = factor > 1;
    this.result = {
      cuts: [],
      contentValues: [],
      adaptiveRatios: [],
      downscale: factor,
      components: { deltaHue: [], deltaSat: [], deltaLum: [] },
      processedWidth: scaled ? Math.max(1, roundHalfEven(width / factor)) : width,
      processedHeight: scaled ? Math.max(1, roundHalfEven(height / factor)) : height,
    };
  }

  push(rgb: Uint8Array): void {
    const expected = this.width * this.height * 3;
    if (rgb.length !== expected) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `frame ${this.frame} has ${rgb.length} bytes, expected ${expected} (RGB24)`,
      );
    }
    const { processedWidth: pw, processedHeight: ph } = this.result;
    const img = resizeLinear(rgb, this.width, this.height, 3, pw, ph);
    const n = pw * ph;
    const cur: HsvFrame = { hue: new Uint8Array(n), sat: new Uint8Array(n), lum: new Uint8Array(n) };
    rgbToHsvPlanes(img, n, cur.hue, cur.sat, cur.lum);
    const score = this.score(cur);
    this.prev = cur;
    this.result.adaptiveRatios.push(Number.NaN);
    this.judge(this.frame, score);
    this.frame++;
  }

  private score(cur: HsvFrame): number {
    const c = this.result.components;
    if (this.prev === null) {
      c.deltaHue.push(0);
      c.deltaSat.push(0);
      c.deltaLum.push(0);
      this.result.contentValues.push(0);
      return 0;
    }
    const w = this.o.weights;
    const dh = meanPixelDistance(cur.hue, this.prev.hue);
    const ds = meanPixelDistance(cur.sat, this.prev.sat);
    const dl = meanPixelDistance(cur.lum, this.prev.lum);
    c.deltaHue.push(dh);
    c.deltaSat.push(ds);
    c.deltaLum.push(dl);
    // Python: sum(component * weight) / sum(abs(weight)), left to right, edges term 0.
    const total = 0 + dh * w.deltaHue + ds * w.deltaSat + dl * w.deltaLum + 0 * w.deltaEdges;
    const norm =
      0 + Math.abs(w.deltaHue) + Math.abs(w.deltaSat) + Math.abs(w.deltaLum) + Math.abs(w.deltaEdges);
    const value = total / norm;
    this.result.contentValues.push(value);
    return value;
  }

  private judge(frame: number, score: number): void {
    const ww = this.o.windowWidth;
    this.window.push({ frame, score });
    if (this.window.length < 2 * ww + 1) return;
    if (this.window.length > 2 * ww + 1) this.window.shift();
    const target = this.window[ww]!;
    let sum = 0;
    for (let i = 0; i < this.window.length; i++) if (i !== ww) sum += this.window[i]!.score;
    const average = sum / (2.0 * ww);
    let ratio = 0.0;
    if (Math.abs(average) >= 0.00001) ratio = Math.min(target.score / average, 255.0);
    else if (target.score >= this.o.minContentVal) ratio = 255.0;
    this.result.adaptiveRatios[target.frame] = ratio;
    const thresholdMet = ratio >= this.o.adaptiveThreshold && target.score >= this.o.minContentVal;
    if (thresholdMet && frame - this.lastCut >= this.o.minSceneLen) {
      this.lastCut = target.frame;
      this.result.cuts.push(target.frame);
    }
  }
}

/** Runs the AdaptiveDetector over RGB24 frames (h*w*3, row-major) of one video, streaming. */
export async function detectSceneCuts(
  frames: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  width: number,
  height: number,
  opts?: Partial<AdaptiveDetectorOptions>,
): Promise<SceneCutResult> {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new KinemaError('METRIC_BAD_INPUT', `frame size must be positive integers, got ${width}x${height}`);
  }
  const detector = new AdaptiveDetector(resolveOptions(opts), width, height);
  for await (const rgb of frames) detector.push(rgb);
  return detector.result;
}

/** Decodes the video at `path` (see openVideo) and runs the AdaptiveDetector on it. */
export async function sceneCutsOfVideo(
  path: string,
  opts?: Partial<AdaptiveDetectorOptions>,
): Promise<SceneCutResult> {
  const resolved = resolveOptions(opts);
  const reader = await openVideo(path);
  try {
    return await detectSceneCuts(reader.frames(), reader.info.width, reader.info.height, resolved);
  } finally {
    await reader.close();
  }
}
