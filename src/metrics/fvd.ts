// Fréchet Video Distance (Unterthiner et al., "Towards Accurate Generative Models of Video: A New Metric &
// Challenges", 2018): the Fréchet distance between Gaussians fitted to I3D features of real and generated videos,
//
//   FVD = ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2 tr((Σ₁ Σ₂)^½),
//
// with μ the feature mean and Σ the feature covariance (n − 1 denominator, numpy.cov's default, as in the common
// FVD/FID implementations). tr((Σ₁Σ₂)^½) is computed as tr((√Σ₁ Σ₂ √Σ₁)^½) — the same eigenvalues, but of a
// symmetric PSD matrix — with a cyclic Jacobi eigendecomposition in float64 (negative eigenvalues from round-off
// are clamped to 0).
//
// The I3D network is user-provided as ONNX (e.g. an export of the Kinetics-400 I3D used by the FVD reference).
// Expected input: float32 [N, 3, T, 224, 224], RGB in [-1, 1]; T = 16 unless the model fixes another value.
// Expected output (the first output): float32 [N, F] features (logits or pooled features, whatever the export
// provides; trailing dimensions of size 1 are squeezed). Each video contributes its first T frames, each resized
// to 224x224 with bilinear interpolation (no antialiasing) and mapped x ↦ x/127.5 − 1.
import * as ort from 'onnxruntime-node';
import { resizeBilinear, type RgbVideo } from './image_ops.js';
import { KinemaError } from '../errors.js';

/** Eigen-decomposition of a symmetric n×n matrix (row-major) by cyclic Jacobi rotations. */
export function symmetricEigen(
  matrix: ArrayLike<number>,
  n: number,
): { values: Float64Array; vectors: Float64Array } {
  if (matrix.length !== n * n)
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `symmetricEigen: expected ${n * n} entries, got ${matrix.length}`,
    );
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += a[i]! * a[i]!;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! * a[p * n + q]!;
    if (off <= 1e-26 * scale || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) rotate(a, v, n, p, q);
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i]!;
  return { values, vectors: v };
}

/** One Jacobi rotation zeroing a[p][q]; accumulates the rotation into the eigenvector columns of v. */
function rotate(a: Float64Array, v: Float64Array, n: number, p: number, q: number): void {
  const apq = a[p * n + q]!;
  if (apq === 0) return;
  const app = a[p * n + p]!;
  const aqq = a[q * n + q]!;
  const theta = (aqq - app) / (2 * apq);
  const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
  const c = 1 / Math.sqrt(t * t + 1);
  const s = t * c;
  for (let k = 0; k < n; k++) {
    if (k === p || k === q) continue;
    const akp = a[k * n + p]!;
    const akq = a[k * n + q]!;
    const nkp = c * akp - s * akq;
    const nkq = s * akp + c * akq;
    a[k * n + p] = nkp;
    a[p * n + k] = nkp;
    a[k * n + q] = nkq;
    a[q * n + k] = nkq;
  }
  a[p * n + p] = app - t * apq;
  a[q * n + q] = aqq + t * apq;
  a[p * n + q] = 0;
  a[q * n + p] = 0;
  for (let k = 0; k < n; k++) {
    const vkp = v[k * n + p]!;
    const vkq = v[k * n + q]!;
    v[k * n + p] = c * vkp - s * vkq;
    v[k * n + q] = s * vkp + c * vkq;
  }
}

/** Square root of a symmetric PSD matrix: V diag(√max(λ, 0)) Vᵀ. */
export function sqrtPsd(matrix: ArrayLike<number>, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(matrix, n);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = Math.sqrt(Math.max(0, values[k]!));
    if (s === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = vectors[i * n + k]! * s;
      if (vik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += vik * vectors[j * n + k]!;
    }
  }
  return out;
}

function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += aik * b[k * n + j]!;
    }
  }
  return out;
}

/** Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); sigmas are n×n row-major. */
export function frechetDistance(
  mu1: ArrayLike<number>,
  sigma1: ArrayLike<number>,
  mu2: ArrayLike<number>,
  sigma2: ArrayLike<number>,
): number {
  const n = mu1.length;
  if (mu2.length !== n || sigma1.length !== n * n || sigma2.length !== n * n) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `frechetDistance: dimension mismatch (mu1 ${mu1.length}, mu2 ${mu2.length}, sigma1 ${sigma1.length}, sigma2 ${sigma2.length})`,
    );
  }
  let diff = 0;
  let tr = 0;
  for (let i = 0; i < n; i++) {
    diff += (mu1[i]! - mu2[i]!) ** 2;
    tr += sigma1[i * n + i]! + sigma2[i * n + i]!;
  }
  const r = sqrtPsd(sigma1, n);
  const m = matmul(matmul(r, Float64Array.from(sigma2), n), r, n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const s = 0.5 * (m[i * n + j]! + m[j * n + i]!);
      m[i * n + j] = s;
      m[j * n + i] = s;
    }
  }
  let trSqrt = 0;
  for (const l of symmetricEigen(m, n).values) trSqrt += Math.sqrt(Math.max(0, l));
  return diff + tr - 2 * trSqrt;
}

export interface FeatureStats {
  dim: number;
  count: number;
  mu: Float64Array;
  /** dim×dim row-major covariance, n − 1 denominator. */
  sigma: Float64Array;
}

/** Mean and covariance of feature vectors (at least 2). */
export function featureStats(features: readonly ArrayLike<number>[]): FeatureStats {
  const count = features.length;
  if (count < 2)
    throw new KinemaError('METRIC_BAD_INPUT', `featureStats: need at least 2 feature vectors, got ${count}`);
  const dim = features[0]!.length;
  const mu = new Float64Array(dim);
  for (const f of features) {
    if (f.length !== dim)
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `featureStats: feature lengths differ (${dim} vs ${f.length})`,
      );
    for (let i = 0; i < dim; i++) mu[i]! += f[i]!;
  }
  for (let i = 0; i < dim; i++) mu[i]! /= count;
  const sigma = new Float64Array(dim * dim);
  const d = new Float64Array(dim);
  for (const f of features) {
    for (let i = 0; i < dim; i++) d[i] = f[i]! - mu[i]!;
    for (let i = 0; i < dim; i++) {
      const di = d[i]!;
      for (let j = i; j < dim; j++) sigma[i * dim + j]! += di * d[j]!;
    }
  }
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      const s = sigma[i * dim + j]! / (count - 1);
      sigma[i * dim + j] = s;
      sigma[j * dim + i] = s;
    }
  }
  return { dim, count, mu, sigma };
}

export interface I3DOptions {
  /** Frames per clip T; default the model's fixed T, else 16. */
  numFrames?: number;
  /** Videos per session run. Default 1. */
  batchSize?: number;
  threads?: number;
}

const I3D_SIZE = 224;

/** Runs a user-provided I3D ONNX model (see the file header for the expected input and output). */
export class I3DFeatureExtractor {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly inputName: string,
    readonly numFrames: number,
    private readonly batchSize: number,
  ) {}

  static async load(modelPath: string, opts: I3DOptions = {}): Promise<I3DFeatureExtractor> {
    const sessionOpts: ort.InferenceSession.SessionOptions = {};
    if (opts.threads !== undefined) sessionOpts.intraOpNumThreads = opts.threads;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(modelPath, sessionOpts);
    } catch (err) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `I3D: cannot load ONNX model ${modelPath}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    if (session.inputMetadata.length !== 1) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `I3D: model has ${session.inputMetadata.length} inputs, expected 1 ([N, 3, T, 224, 224])`,
      );
    }
    const meta = session.inputMetadata[0]!;
    if (!meta.isTensor || meta.type !== 'float32' || (meta.shape.length !== 0 && meta.shape.length !== 5)) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `I3D: input '${meta.name}' must be float32 [N, 3, T, 224, 224]`,
      );
    }
    const [, c, t, h, w] = meta.shape;
    if (
      (typeof c === 'number' && c !== 3) ||
      (typeof h === 'number' && h !== I3D_SIZE) ||
      (typeof w === 'number' && w !== I3D_SIZE)
    ) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `I3D: input '${meta.name}' is [${meta.shape.join(', ')}], expected [N, 3, T, 224, 224]`,
      );
    }
    const fixedT = typeof t === 'number' && t > 0 ? t : null;
    const numFrames = opts.numFrames ?? fixedT ?? 16;
    if (fixedT !== null && numFrames !== fixedT) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `I3D: model takes exactly ${fixedT} frames, numFrames is ${numFrames}`,
      );
    }
    const fixedN = meta.shape[0];
    const batchSize = typeof fixedN === 'number' && fixedN > 0 ? fixedN : (opts.batchSize ?? 1);
    return new I3DFeatureExtractor(session, meta.name, numFrames, batchSize);
  }

  /** [3, T, 224, 224] input of one video, RGB in [-1, 1]. */
  preprocess(video: RgbVideo): Float32Array {
    const t = this.numFrames;
    if (video.frames.length < t) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `I3D: a video has ${video.frames.length} frames, the model needs ${t}`,
      );
    }
    const plane = I3D_SIZE * I3D_SIZE;
    const out = new Float32Array(3 * t * plane);
    const n = video.width * video.height;
    const channel = new Float32Array(n);
    for (let f = 0; f < t; f++) {
      const rgb = video.frames[f]!;
      if (rgb.length !== n * 3)
        throw new KinemaError(
          'METRIC_BAD_INPUT',
          `I3D: frame ${f} does not match ${video.width}x${video.height} RGB`,
        );
      for (let c = 0; c < 3; c++) {
        for (let i = 0; i < n; i++) channel[i] = rgb[i * 3 + c]!;
        const r = resizeBilinear(channel, video.width, video.height, I3D_SIZE, I3D_SIZE);
        const base = (c * t + f) * plane;
        for (let i = 0; i < plane; i++) out[base + i] = r[i]! / 127.5 - 1;
      }
    }
    return out;
  }

  /** One feature vector per video. */
  async extract(videos: readonly RgbVideo[]): Promise<Float32Array[]> {
    const feats: Float32Array[] = [];
    const per = 3 * this.numFrames * I3D_SIZE * I3D_SIZE;
    for (let start = 0; start < videos.length; start += this.batchSize) {
      const batch = videos.slice(start, start + this.batchSize);
      const data = new Float32Array(this.batchSize * per);
      batch.forEach((v, i) => data.set(this.preprocess(v), i * per));
      // A fixed batch size is filled by repeating the last video; its extra rows are dropped.
      for (let i = batch.length; i < this.batchSize; i++)
        data.copyWithin(i * per, (batch.length - 1) * per, batch.length * per);
      const input = new ort.Tensor('float32', data, [this.batchSize, 3, this.numFrames, I3D_SIZE, I3D_SIZE]);
      const results = await this.session.run({ [this.inputName]: input });
      const out = results[this.session.outputNames[0]!];
      if (!(out instanceof ort.Tensor) || out.type !== 'float32')
        throw new KinemaError('METRIC_BAD_INPUT', 'I3D: first output is not a float32 tensor');
      const dims = out.dims.filter((d, i) => i < 2 || d !== 1);
      if (dims.length !== 2 || dims[0] !== this.batchSize) {
        throw new KinemaError(
          'METRIC_BAD_INPUT',
          `I3D: output shaped [${out.dims.join(', ')}], expected [${this.batchSize}, F]`,
        );
      }
      const f = dims[1]!;
      const values = out.data as Float32Array;
      for (let i = 0; i < batch.length; i++) feats.push(values.slice(i * f, (i + 1) * f));
    }
    return feats;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Something that maps videos to feature vectors (the I3D extractor, or any other). */
export interface VideoFeatureExtractor {
  extract(videos: readonly RgbVideo[]): Promise<Float32Array[]>;
}

/** FVD between two sets of videos (each set needs at least 2 videos). */
export async function fvd(
  realVideos: readonly RgbVideo[],
  fakeVideos: readonly RgbVideo[],
  extractor: VideoFeatureExtractor,
): Promise<number> {
  if (realVideos.length < 2 || fakeVideos.length < 2) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `FVD needs at least 2 videos per set (got ${realVideos.length} real, ${fakeVideos.length} generated)`,
    );
  }
  const real = featureStats(await extractor.extract(realVideos));
  const fake = featureStats(await extractor.extract(fakeVideos));
  if (real.dim !== fake.dim)
    throw new KinemaError('METRIC_BAD_INPUT', `FVD: feature sizes differ (${real.dim} vs ${fake.dim})`);
  return frechetDistance(real.mu, real.sigma, fake.mu, fake.sigma);
}
