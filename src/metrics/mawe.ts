// MAWE (motion-aware warp error), as computed by StreamingT2V's released evaluation script `mawe.py`
// (github.com/Picsart-AI-Research/StreamingT2V, `get_mawe`, default `--coeff 9.5`). Paper: Henschel et al.,
// "StreamingT2V: Consistent, Dynamic, and Extendable Long Video Generation from Text" (arXiv 2403.14773), where
// MAWE(V) = W(V) / (c · OFS(V)). The script's computation, which we follow, is per frame pair:
//
// 1. Every frame is resized to 720x720 (bilinear, no antialiasing, uint8 result; aspect ratio not kept).
// 2. Flow F from frame t to frame t+1 (RAFT-large in the script; here the classical Farnebäck flow by default, or
//    a user-supplied RAFT ONNX model).
// 3. motion_t = mean over all pixels of |F| (Euclidean norm, pixels).
// 4. Forward warp of frame t by F: every source pixel p goes to q = round(p + F(p)) (round half to even); targets
//    outside the frame are dropped; when several sources land on one target the last in row-major order wins;
//    targets that receive nothing are "unknown" (and 0 in the warped image).
// 5. warp_t = Σ over known pixels and the 3 channels of (frame_{t+1} − warped)², divided by 3·#known
//    (by 3·H·W if nothing is known), on the [0, 255] scale.
// 6. MAWE = mean over pairs of warp_t / (c · motion_t), c = 9.5 — a mean of per-pair ratios (not the ratio of
//    means that the paper's formula reads as).
//
// A pair with motion_t = 0 has a ratio of 0/0 (frames identical, nothing moved) or x/0 = +∞. The reference would
// return NaN/∞ for the whole video; we skip 0/0 pairs (counted in `undefinedPairs`) and keep +∞. If every pair
// is 0/0 (a static video) MAWE is null: the metric is undefined there.
import { resizeRgbBilinear, roundHalfEven } from './image_ops.js';
import { FarnebackEstimator, type FlowEstimator, type FlowField } from './optical_flow.js';
import { FlowSmoothnessAccumulator, type SmoothnessResult } from './smoothness.js';
import { KinemaError } from '../errors.js';

/** Default MAWE normalisation constant c of StreamingT2V's script. */
export const MAWE_COEFF = 9.5;
/** Frame size StreamingT2V's script resizes every frame to before computing flow and warp error. */
export const MAWE_SIZE = 720;

export interface ForwardWarp {
  /** RGB24 of the warped frame, 0 where unknown. */
  warped: Uint8Array;
  /** 1 where some source pixel landed, 0 elsewhere. */
  known: Uint8Array;
  knownCount: number;
}

/** Forward (splatting) warp of an RGB24 frame by a flow, as StreamingT2V's `warp_with_flow`. */
export function forwardWarp(rgb: Uint8Array, flow: FlowField, width: number, height: number): ForwardWarp {
  const n = width * height;
  if (rgb.length !== n * 3 || flow.u.length !== n || flow.v.length !== n) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `forwardWarp: frame/flow sizes do not match ${width}x${height}`,
    );
  }
  const source = new Int32Array(n).fill(-1);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const tx = roundHalfEven(Math.fround(x + flow.u[i]!));
      const ty = roundHalfEven(Math.fround(y + flow.v[i]!));
      if (tx >= 0 && ty >= 0 && tx < width && ty < height) source[ty * width + tx] = i;
    }
  }
  const warped = new Uint8Array(n * 3);
  const known = new Uint8Array(n);
  let knownCount = 0;
  for (let q = 0; q < n; q++) {
    const p = source[q]!;
    if (p < 0) continue;
    known[q] = 1;
    knownCount++;
    warped[q * 3] = rgb[p * 3]!;
    warped[q * 3 + 1] = rgb[p * 3 + 1]!;
    warped[q * 3 + 2] = rgb[p * 3 + 2]!;
  }
  return { warped, known, knownCount };
}

/** Mean squared error between `next` and the forward warp of `prev`, over known pixels and all 3 channels. */
export function warpError(
  prev: Uint8Array,
  next: Uint8Array,
  flow: FlowField,
  width: number,
  height: number,
): number {
  const { warped, known, knownCount } = forwardWarp(prev, flow, width, height);
  let sum = 0;
  for (let q = 0; q < known.length; q++) {
    if (known[q] === 0) continue;
    for (let c = 0; c < 3; c++) {
      const d = next[q * 3 + c]! - warped[q * 3 + c]!;
      sum += d * d;
    }
  }
  const count = knownCount > 0 ? 3 * knownCount : 3 * width * height;
  return sum / count;
}

/** Mean Euclidean flow magnitude over all pixels. */
export function meanFlowMagnitude(flow: FlowField): number {
  let s = 0;
  for (let i = 0; i < flow.u.length; i++) s += Math.hypot(flow.u[i]!, flow.v[i]!);
  return s / flow.u.length;
}

export interface MotionOptions {
  /** Flow estimator; default a Farnebäck estimator with default options. */
  estimator?: FlowEstimator;
  /** Size [width, height] frames are resized to before flow; null keeps the native size. Default [720, 720]. */
  size?: [number, number] | null;
  /** MAWE constant c. Default 9.5. */
  coeff?: number;
}

export interface MaweResult {
  mawe: number | null;
  /** Per pair t → t+1. */
  warpErrors: number[];
  motions: number[];
  ratios: number[];
  undefinedPairs: number;
  flowWidth: number;
  flowHeight: number;
}

export interface MotionResult extends MaweResult {
  /** Mean over pairs of the mean flow magnitude (StreamingT2V's OFS), at the flow resolution. */
  meanFlowMagnitude: number;
  smoothness: SmoothnessResult;
}

/** Computes MAWE, flow smoothness and flow statistics from frames pushed one at a time in video order. */
export class MotionAnalyzer {
  readonly flowWidth: number;
  readonly flowHeight: number;
  private readonly estimator: FlowEstimator;
  private readonly coeff: number;
  private readonly smooth: FlowSmoothnessAccumulator;
  private prev: Uint8Array | null = null;
  private readonly warpErrors: number[] = [];
  private readonly motions: number[] = [];

  constructor(
    readonly width: number,
    readonly height: number,
    opts: MotionOptions = {},
  ) {
    const size = opts.size === undefined ? [MAWE_SIZE, MAWE_SIZE] : opts.size;
    this.flowWidth = size === null ? width : size[0];
    this.flowHeight = size === null ? height : size[1];
    for (const v of [width, height, this.flowWidth, this.flowHeight]) {
      if (!Number.isInteger(v) || v < 2)
        throw new KinemaError('METRIC_BAD_INPUT', `MotionAnalyzer: bad frame or flow size ${v}`);
    }
    this.coeff = opts.coeff ?? MAWE_COEFF;
    if (!(this.coeff > 0))
      throw new KinemaError('METRIC_BAD_INPUT', `MotionAnalyzer: coeff must be positive, got ${this.coeff}`);
    this.estimator = opts.estimator ?? new FarnebackEstimator();
    this.smooth = new FlowSmoothnessAccumulator(this.flowWidth * this.flowHeight);
  }

  get pairs(): number {
    return this.motions.length;
  }

  /** Adds the next RGB24 frame; returns the pair's [warpError, motion] once there is a previous frame. */
  async push(frame: Uint8Array): Promise<{ warpError: number; motion: number } | null> {
    if (frame.length !== this.width * this.height * 3) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `MotionAnalyzer: frame has ${frame.length} bytes, expected ${this.width * this.height * 3}`,
      );
    }
    const cur = resizeRgbBilinear(frame, this.width, this.height, this.flowWidth, this.flowHeight);
    const prev = this.prev;
    this.prev = cur;
    if (prev === null) return null;
    const flow = await this.estimator.estimate(prev, cur, this.flowWidth, this.flowHeight);
    const motion = meanFlowMagnitude(flow);
    const err = warpError(prev, cur, flow, this.flowWidth, this.flowHeight);
    this.warpErrors.push(err);
    this.motions.push(motion);
    this.smooth.push(flow);
    return { warpError: err, motion };
  }

  result(): MotionResult {
    if (this.pairs === 0)
      throw new KinemaError('METRIC_BAD_INPUT', 'MotionAnalyzer: needs at least 2 frames');
    const ratios = this.warpErrors.map((w, i) => w / (this.coeff * this.motions[i]!));
    const defined = ratios.filter((r) => !Number.isNaN(r));
    const mawe = defined.length === 0 ? null : defined.reduce((a, b) => a + b, 0) / defined.length;
    return {
      mawe,
      warpErrors: [...this.warpErrors],
      motions: [...this.motions],
      ratios,
      undefinedPairs: ratios.length - defined.length,
      flowWidth: this.flowWidth,
      flowHeight: this.flowHeight,
      meanFlowMagnitude: this.motions.reduce((a, b) => a + b, 0) / this.motions.length,
      smoothness: this.smooth.result(),
    };
  }
}

/** Runs a `MotionAnalyzer` over in-memory frames (RGB24, width*height*3 each). */
export async function analyzeMotion(
  frames: readonly Uint8Array[],
  width: number,
  height: number,
  opts: MotionOptions = {},
): Promise<MotionResult> {
  if (frames.length < 2)
    throw new KinemaError('METRIC_BAD_INPUT', `motion metrics need at least 2 frames, got ${frames.length}`);
  const analyzer = new MotionAnalyzer(width, height, opts);
  for (const f of frames) await analyzer.push(f);
  return analyzer.result();
}

/** MAWE of a video given as RGB24 frames (see the file header for the exact definition). */
export async function mawe(
  frames: readonly Uint8Array[],
  width: number,
  height: number,
  opts: MotionOptions = {},
): Promise<MaweResult> {
  const r = await analyzeMotion(frames, width, height, opts);
  return {
    mawe: r.mawe,
    warpErrors: r.warpErrors,
    motions: r.motions,
    ratios: r.ratios,
    undefinedPairs: r.undefinedPairs,
    flowWidth: r.flowWidth,
    flowHeight: r.flowHeight,
  };
}
