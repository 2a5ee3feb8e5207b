// Dense optical flow in TypeScript: Farnebäck's two-frame motion estimation by polynomial expansion.
//
// Reference: G. Farnebäck, "Two-Frame Motion Estimation Based on Polynomial Expansion", SCIA 2003 (the method
// behind OpenCV's `calcOpticalFlowFarneback`; our defaults are OpenCV's usual ones: pyramid scale 0.5,
// 15-pixel box window, 3 iterations, 5-pixel neighbourhood with Gaussian applicability sigma 1.1).
//
// 1. Polynomial expansion: around every pixel the image is approximated by f(x) ≈ xᵀAx + bᵀx + c, fitted by
//    weighted least squares over a (2n+1)² neighbourhood with Gaussian applicability. The fit reduces to six
//    separable correlations (with g, x·g, x²·g per axis) followed by the constant inverse Gram matrix.
// 2. Displacement: if f₂(x) = f₁(x − d) then b₂ = b₁ − 2A d. With a prior displacement d̃ (coarser level or
//    previous iteration), per pixel A = (A₁(x) + A₂(x + d̃))/2 and Δb = ½(b₁(x) − b₂(x + d̃)) + A d̃, and d solves
//    A d = Δb in the least-squares sense over a box window: d = (Σ AᵀA)⁻¹ Σ AᵀΔb. Samples whose displaced position
//    leaves the image get weight 0; pixels near the border are down-weighted. Our addition: each solve is damped
//    towards the current estimate (see `solveFlow`) so structureless windows keep the coarser flow.
// 3. Coarse to fine over a Gaussian pyramid (each level: Gaussian blur of the level above with
//    σ = (1/ratio − 1)/2 of its pixels, then bilinear resize), the flow of a level scaled up to start the next.
//
// Convention: flow (u, v) maps `prev` to `next`: prev(x, y) ≈ next(x + u, y + v); x to the right, y down, pixels.
// Identical frames give exactly zero flow.
import { blurSeparable, boxSum, gaussianKernel, resizeBilinear, rgbToGray } from './image_ops.js';
import { KinemaError } from '../errors.js';

export interface FlowField {
  u: Float32Array;
  v: Float32Array;
}

export interface FarnebackOptions {
  /** Ratio between successive pyramid levels, in (0, 1). Default 0.5. */
  pyrScale?: number;
  /** Maximum number of levels besides the full-resolution one; capped so the coarsest side stays ≥ 16 px. Default 5. */
  levels?: number;
  /** Side of the box window over which the displacement equations are averaged (odd). Default 15. */
  winSize?: number;
  /** Iterations per pyramid level. Default 3. */
  iterations?: number;
  /** Side of the polynomial-expansion neighbourhood (odd, ≥ 3). Default 5. */
  polyN?: number;
  /** Standard deviation of the Gaussian applicability of the expansion. Default 1.1. */
  polySigma?: number;
  /** Relative weight κ of the pull towards the previous estimate (λ = κ·tr G, see `solveFlow`). Default 0.05. */
  regularization?: number;
}

type ResolvedOptions = Required<FarnebackOptions>;

function resolveOptions(opts: FarnebackOptions): ResolvedOptions {
  const o: ResolvedOptions = {
    pyrScale: opts.pyrScale ?? 0.5,
    levels: opts.levels ?? 5,
    winSize: opts.winSize ?? 15,
    iterations: opts.iterations ?? 3,
    polyN: opts.polyN ?? 5,
    polySigma: opts.polySigma ?? 1.1,
    regularization: opts.regularization ?? 0.05,
  };
  if (!(o.pyrScale > 0 && o.pyrScale < 1))
    throw new KinemaError('METRIC_BAD_INPUT', `opticalFlow: pyrScale must be in (0, 1), got ${o.pyrScale}`);
  if (!Number.isInteger(o.levels) || o.levels < 0)
    throw new KinemaError('METRIC_BAD_INPUT', `opticalFlow: bad levels ${o.levels}`);
  if (!Number.isInteger(o.winSize) || o.winSize < 3 || o.winSize % 2 === 0) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `opticalFlow: winSize must be an odd integer ≥ 3, got ${o.winSize}`,
    );
  }
  if (!Number.isInteger(o.iterations) || o.iterations < 1)
    throw new KinemaError('METRIC_BAD_INPUT', `opticalFlow: bad iterations ${o.iterations}`);
  if (!Number.isInteger(o.polyN) || o.polyN < 3 || o.polyN % 2 === 0) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `opticalFlow: polyN must be an odd integer ≥ 3, got ${o.polyN}`,
    );
  }
  if (!(o.polySigma > 0))
    throw new KinemaError('METRIC_BAD_INPUT', `opticalFlow: polySigma must be positive, got ${o.polySigma}`);
  if (!(o.regularization >= 0))
    throw new KinemaError('METRIC_BAD_INPUT', `opticalFlow: bad regularization ${o.regularization}`);
  return o;
}

/** Per-pixel expansion coefficients, interleaved [bx, by, axx, ayy, axy/2]. */
const NC = 5;

interface Level {
  width: number;
  height: number;
  coeffs: Float32Array;
}

/** A frame prepared for flow estimation: its pyramid of polynomial expansions, finest level first. */
export interface PreparedFrame {
  readonly width: number;
  readonly height: number;
  readonly levels: readonly Level[];
}

interface ExpansionKernels {
  n: number;
  g: Float64Array;
  xg: Float64Array;
  xxg: Float64Array;
  /** Rows 1 and 2 of the inverse of the 3x3 Gram matrix for (c, axx, ayy). */
  qxx: [number, number, number];
  qyy: [number, number, number];
  invM2: number;
  invM22: number;
}

function expansionKernels(polyN: number, sigma: number): ExpansionKernels {
  const n = (polyN - 1) >> 1;
  const g = new Float64Array(2 * n + 1);
  let sum = 0;
  for (let i = -n; i <= n; i++) {
    g[i + n] = Math.exp((-i * i) / (2 * sigma * sigma));
    sum += g[i + n]!;
  }
  const xg = new Float64Array(2 * n + 1);
  const xxg = new Float64Array(2 * n + 1);
  let m2 = 0;
  let m4 = 0;
  for (let i = -n; i <= n; i++) {
    g[i + n]! /= sum;
    xg[i + n] = i * g[i + n]!;
    xxg[i + n] = i * i * g[i + n]!;
    m2 += i * i * g[i + n]!;
    m4 += i * i * i * i * g[i + n]!;
  }
  // Gram matrix of the basis (1, x², y²) under the separable applicability (1-D moments m0 = 1, m2, m4).
  const q = invert3([
    [1, m2, m2],
    [m2, m4, m2 * m2],
    [m2, m2 * m2, m4],
  ]);
  return { n, g, xg, xxg, qxx: q[1]!, qyy: q[2]!, invM2: 1 / m2, invM22: 1 / (m2 * m2) };
}

function invert3(m: number[][]): [number, number, number][] {
  const [a, b, c] = m[0]!;
  const [d, e, f] = m[1]!;
  const [g, h, i] = m[2]!;
  const A = e! * i! - f! * h!;
  const B = -(d! * i! - f! * g!);
  const C = d! * h! - e! * g!;
  const det = a! * A + b! * B + c! * C;
  if (Math.abs(det) < 1e-12)
    throw new KinemaError('METRIC_BAD_INPUT', 'opticalFlow: singular polynomial-expansion Gram matrix');
  const s = 1 / det;
  return [
    [A * s, -(b! * i! - c! * h!) * s, (b! * f! - c! * e!) * s],
    [B * s, (a! * i! - c! * g!) * s, -(a! * f! - c! * d!) * s],
    [C * s, -(a! * h! - b! * g!) * s, (a! * e! - b! * d!) * s],
  ];
}

/** Polynomial expansion of a single-channel image (borders replicated). */
function polyExpansion(img: Float32Array, width: number, height: number, k: ExpansionKernels): Float32Array {
  const n = k.n;
  const rows = new Float32Array(width * height * 3); // per pixel: Σg f, Σ x g f, Σ x² g f along the row
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      for (let i = -n; i <= n; i++) {
        const xi = x + i;
        const f = img[row + (xi < 0 ? 0 : xi >= width ? width - 1 : xi)]!;
        s0 += k.g[i + n]! * f;
        s1 += k.xg[i + n]! * f;
        s2 += k.xxg[i + n]! * f;
      }
      const o = (row + x) * 3;
      rows[o] = s0;
      rows[o + 1] = s1;
      rows[o + 2] = s2;
    }
  }
  const out = new Float32Array(width * height * NC);
  const [qx0, qx1, qx2] = k.qxx;
  const [qy0, qy1, qy2] = k.qyy;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let c00 = 0;
      let c10 = 0;
      let c01 = 0;
      let c20 = 0;
      let c02 = 0;
      let c11 = 0;
      for (let j = -n; j <= n; j++) {
        const yj = y + j;
        const o = ((yj < 0 ? 0 : yj >= height ? height - 1 : yj) * width + x) * 3;
        const r0 = rows[o]!;
        const r1 = rows[o + 1]!;
        const g = k.g[j + n]!;
        const jg = k.xg[j + n]!;
        c00 += g * r0;
        c10 += g * r1;
        c20 += g * rows[o + 2]!;
        c01 += jg * r0;
        c11 += jg * r1;
        c02 += k.xxg[j + n]! * r0;
      }
      const o = (y * width + x) * NC;
      out[o] = c10 * k.invM2;
      out[o + 1] = c01 * k.invM2;
      out[o + 2] = qx0 * c00 + qx1 * c20 + qx2 * c02;
      out[o + 3] = qy0 * c00 + qy1 * c20 + qy2 * c02;
      out[o + 4] = 0.5 * c11 * k.invM22;
    }
  }
  return out;
}

function levelSizes(width: number, height: number, o: ResolvedOptions): { width: number; height: number }[] {
  const sizes = [{ width, height }];
  for (let k = 1; k <= o.levels; k++) {
    const s = Math.pow(o.pyrScale, k);
    const w = Math.round(width * s);
    const h = Math.round(height * s);
    if (Math.min(w, h) < 16) break;
    sizes.push({ width: w, height: h });
  }
  return sizes;
}

/** Weight that fades the displacement equations out over the outermost pixels, where the expansion is biased. */
function borderWeights(size: number, n: number): Float32Array {
  const w = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const d = Math.min(i, size - 1 - i);
    w[i] = d > n ? 1 : (d + 1) / (n + 2);
  }
  return w;
}

/**
 * Builds, per pixel, the normal-equation terms [G11, G12, G22, h1, h2] of A d = Δb for the current flow estimate.
 */
function updateMatrices(
  r0: Float32Array,
  r1: Float32Array,
  level: { width: number; height: number },
  flow: FlowField,
  n: number,
  m: Float32Array,
): void {
  const { width, height } = level;
  m.fill(0);
  const wx = borderWeights(width, n);
  const wy = borderWeights(height, n);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const dx = flow.u[i]!;
      const dy = flow.v[i]!;
      const fx = x + dx;
      const fy = y + dy;
      const x1 = Math.floor(fx);
      const y1 = Math.floor(fy);
      if (x1 < 0 || y1 < 0 || x1 > width - 1 || y1 > height - 1) continue;
      const ax = fx - x1;
      const ay = fy - y1;
      const o11 = (y1 * width + x1) * NC;
      const o12 = x1 + 1 < width ? o11 + NC : o11;
      const o21 = y1 + 1 < height ? o11 + width * NC : o11;
      const o22 = x1 + 1 < width ? o21 + NC : o21;
      const w11 = (1 - ax) * (1 - ay);
      const w12 = ax * (1 - ay);
      const w21 = (1 - ax) * ay;
      const w22 = ax * ay;
      const o = i * NC;
      const pb1 = w11 * r1[o11]! + w12 * r1[o12]! + w21 * r1[o21]! + w22 * r1[o22]!;
      const pb2 = w11 * r1[o11 + 1]! + w12 * r1[o12 + 1]! + w21 * r1[o21 + 1]! + w22 * r1[o22 + 1]!;
      const pa11 = w11 * r1[o11 + 2]! + w12 * r1[o12 + 2]! + w21 * r1[o21 + 2]! + w22 * r1[o22 + 2]!;
      const pa22 = w11 * r1[o11 + 3]! + w12 * r1[o12 + 3]! + w21 * r1[o21 + 3]! + w22 * r1[o22 + 3]!;
      const pa12 = w11 * r1[o11 + 4]! + w12 * r1[o12 + 4]! + w21 * r1[o21 + 4]! + w22 * r1[o22 + 4]!;
      const a11 = 0.5 * (r0[o + 2]! + pa11);
      const a22 = 0.5 * (r0[o + 3]! + pa22);
      const a12 = 0.5 * (r0[o + 4]! + pa12);
      const b1 = 0.5 * (r0[o]! - pb1) + a11 * dx + a12 * dy;
      const b2 = 0.5 * (r0[o + 1]! - pb2) + a12 * dx + a22 * dy;
      const w = wx[x]! < wy[y]! ? wx[x]! : wy[y]!;
      m[o] = w * (a11 * a11 + a12 * a12);
      m[o + 1] = w * (a12 * (a11 + a22));
      m[o + 2] = w * (a12 * a12 + a22 * a22);
      m[o + 3] = w * (a11 * b1 + a12 * b2);
      m[o + 4] = w * (a12 * b1 + a22 * b2);
    }
  }
}

/**
 * Solves the window-summed systems, in place into `flow`, with a Tikhonov pull towards the current estimate d̃:
 * (G + λI) d = h + λ d̃, λ = κ·tr(G) + 1e-6. Relative to the window's own structure, it only damps the update
 * (the fixed point of the iterations is still G d = h) but keeps windows without structure, or with structure in
 * one direction only (aperture problem), at the coarser estimate instead of zero or an arbitrary value.
 */
function solveFlow(summed: Float32Array, flow: FlowField, kappa: number): void {
  const n = flow.u.length;
  for (let i = 0; i < n; i++) {
    const o = i * NC;
    const lambda = kappa * (summed[o]! + summed[o + 2]!) + 1e-6;
    const g11 = summed[o]! + lambda;
    const g12 = summed[o + 1]!;
    const g22 = summed[o + 2]! + lambda;
    const h1 = summed[o + 3]! + lambda * flow.u[i]!;
    const h2 = summed[o + 4]! + lambda * flow.v[i]!;
    const idet = 1 / (g11 * g22 - g12 * g12);
    flow.u[i] = (g22 * h1 - g12 * h2) * idet;
    flow.v[i] = (g11 * h2 - g12 * h1) * idet;
  }
}

/** Farnebäck flow estimator for frames of one fixed size; prepare each frame once and reuse it for both pairs. */
export class Farneback {
  readonly width: number;
  readonly height: number;
  private readonly o: ResolvedOptions;
  private readonly kernels: ExpansionKernels;
  private readonly sizes: { width: number; height: number }[];

  constructor(width: number, height: number, opts: FarnebackOptions = {}) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 2 || height < 2) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `opticalFlow: frame size must be at least 2x2 pixels, got ${width}x${height}`,
      );
    }
    this.width = width;
    this.height = height;
    this.o = resolveOptions(opts);
    this.kernels = expansionKernels(this.o.polyN, this.o.polySigma);
    this.sizes = levelSizes(width, height, this.o);
  }

  /** Builds the pyramid of polynomial expansions of a grayscale frame (values in [0, 255]). */
  prepare(gray: Float32Array): PreparedFrame {
    const { width, height } = this;
    if (gray.length !== width * height) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `opticalFlow: expected ${width * height} gray values for ${width}x${height}, got ${gray.length}`,
      );
    }
    const levels: Level[] = [];
    let img = gray;
    let prev = this.sizes[0]!;
    for (const size of this.sizes) {
      if (size !== prev) {
        // Each level from the one above: anti-alias blur with σ = (1/ratio − 1)/2 in that level's pixels.
        const ratio = size.width / prev.width;
        img = blurSeparable(img, prev.width, prev.height, gaussianKernel((1 / ratio - 1) * 0.5));
        img = resizeBilinear(img, prev.width, prev.height, size.width, size.height);
      }
      levels.push({ ...size, coeffs: polyExpansion(img, size.width, size.height, this.kernels) });
      prev = size;
    }
    return { width, height, levels };
  }

  /** Flow from `prev` to `next`. */
  flow(prev: PreparedFrame, next: PreparedFrame): FlowField {
    if (prev.levels.length !== this.sizes.length || next.levels.length !== this.sizes.length) {
      throw new KinemaError('METRIC_BAD_INPUT', 'opticalFlow: frames were prepared by a different estimator');
    }
    let flow: FlowField | null = null;
    let prevSize = this.sizes[this.sizes.length - 1]!;
    for (let k = this.sizes.length - 1; k >= 0; k--) {
      const size = this.sizes[k]!;
      const count = size.width * size.height;
      if (flow === null) {
        flow = { u: new Float32Array(count), v: new Float32Array(count) };
      } else {
        const su = size.width / prevSize.width;
        const sv = size.height / prevSize.height;
        const u = resizeBilinear(flow.u, prevSize.width, prevSize.height, size.width, size.height);
        const v = resizeBilinear(flow.v, prevSize.width, prevSize.height, size.width, size.height);
        for (let i = 0; i < count; i++) {
          u[i]! *= su;
          v[i]! *= sv;
        }
        flow = { u, v };
      }
      this.refine(prev.levels[k]!.coeffs, next.levels[k]!.coeffs, size, flow);
      prevSize = size;
    }
    return flow!;
  }

  private refine(
    r0: Float32Array,
    r1: Float32Array,
    size: { width: number; height: number },
    flow: FlowField,
  ): void {
    const r = (this.o.winSize - 1) >> 1;
    const m = new Float32Array(size.width * size.height * NC);
    for (let it = 0; it < this.o.iterations; it++) {
      updateMatrices(r0, r1, size, flow, this.kernels.n, m);
      solveFlow(boxSum(m, size.width, size.height, NC, r), flow, this.o.regularization);
    }
  }
}

function checkFrame(data: ArrayLike<number>, n: number, what: string): void {
  if (data.length !== n)
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `opticalFlow: ${what} has ${data.length} values, expected ${n}`,
    );
}

/** Dense flow between two grayscale frames with values in [0, 255] (row-major, width*height). */
export function opticalFlow(
  prev: Float32Array,
  next: Float32Array,
  width: number,
  height: number,
  opts: FarnebackOptions = {},
): FlowField {
  const fb = new Farneback(width, height, opts);
  checkFrame(prev, width * height, 'prev');
  checkFrame(next, width * height, 'next');
  return fb.flow(fb.prepare(prev), fb.prepare(next));
}

/** Dense flow between two RGB24 frames (converted to BT.601 luma first). */
export function opticalFlowRgb(
  prev: Uint8Array,
  next: Uint8Array,
  width: number,
  height: number,
  opts: FarnebackOptions = {},
): FlowField {
  return opticalFlow(rgbToGray(prev, width, height), rgbToGray(next, width, height), width, height, opts);
}

/** Something that estimates dense flow between consecutive RGB24 frames (classical or a neural model). */
export interface FlowEstimator {
  readonly name: string;
  estimate(prev: Uint8Array, next: Uint8Array, width: number, height: number): Promise<FlowField>;
  dispose(): Promise<void>;
}

/**
 * Farnebäck as a `FlowEstimator`. When frames are fed in video order, each frame's pyramid is built once (the
 * `next` of one pair is remembered, by identity, and reused as the `prev` of the following pair — so do not
 * modify a frame buffer in place between calls).
 */
export class FarnebackEstimator implements FlowEstimator {
  readonly name = 'farneback';
  private fb: Farneback | null = null;
  private cached: { frame: Uint8Array; prepared: PreparedFrame } | null = null;

  constructor(private readonly opts: FarnebackOptions = {}) {
    resolveOptions(opts);
  }

  async estimate(prev: Uint8Array, next: Uint8Array, width: number, height: number): Promise<FlowField> {
    if (this.fb === null || this.fb.width !== width || this.fb.height !== height) {
      this.fb = new Farneback(width, height, this.opts);
      this.cached = null;
    }
    const fb = this.fb;
    const a =
      this.cached !== null && this.cached.frame === prev
        ? this.cached.prepared
        : fb.prepare(rgbToGray(prev, width, height));
    const b = fb.prepare(rgbToGray(next, width, height));
    this.cached = { frame: next, prepared: b };
    return fb.flow(a, b);
  }

  async dispose(): Promise<void> {
    this.cached = null;
  }
}
