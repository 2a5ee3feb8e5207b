import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  featureStats,
  frechetDistance,
  fvd,
  I3DFeatureExtractor,
  sqrtPsd,
  symmetricEigen,
  type VideoFeatureExtractor,
} from '../../src/metrics/fvd.js';
import type { RgbVideo } from '../../src/metrics/image_ops.js';
import { writeOnnxModel } from './onnx_builder.js';
import { rng, solidFrame } from './synthetic.js';

const close = (a: number, b: number, tol: number, what = ''): void =>
  assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);

/** Random orthogonal n×n matrix (Gram–Schmidt of a random matrix), row-major. */
function randomOrthogonal(n: number, seed: number): Float64Array {
  const r = rng(seed);
  const q = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const col = Array.from({ length: n }, () => r() - 0.5);
    for (let k = 0; k < j; k++) {
      let d = 0;
      for (let i = 0; i < n; i++) d += col[i]! * q[i * n + k]!;
      for (let i = 0; i < n; i++) col[i]! -= d * q[i * n + k]!;
    }
    const norm = Math.hypot(...col);
    for (let i = 0; i < n; i++) q[i * n + j] = col[i]! / norm;
  }
  return q;
}

/** Q diag(d) Qᵀ. */
function fromEigen(q: Float64Array, d: number[]): Float64Array {
  const n = d.length;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += q[i * n + k]! * d[k]! * q[j * n + k]!;
      out[i * n + j] = s;
    }
  return out;
}

test('Jacobi eigendecomposition reconstructs a symmetric matrix with orthonormal vectors', () => {
  const n = 24;
  const q = randomOrthogonal(n, 4);
  const d = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -1 : 1) * (i + 0.5));
  const { values, vectors } = symmetricEigen(fromEigen(q, d), n);
  assert.deepEqual(
    [...values].sort((a, b) => a - b).map((v) => Math.round(v * 1e9) / 1e9),
    [...d].sort((a, b) => a - b),
  );
  const back = fromEigen(vectors, [...values]);
  const orig = fromEigen(q, d);
  for (let i = 0; i < n * n; i++) close(back[i]!, orig[i]!, 1e-10, 'reconstruction');
  // √(Q diag(d²) Qᵀ) = Q diag(|d|) Qᵀ
  const root = sqrtPsd(
    fromEigen(
      q,
      d.map((v) => v * v),
    ),
    n,
  );
  const expected = fromEigen(q, d.map(Math.abs));
  for (let i = 0; i < n * n; i++) close(root[i]!, expected[i]!, 1e-9, 'sqrt');
});

test('Fréchet distance: identical Gaussians give 0, 1-D closed form', () => {
  const sigma = fromEigen(randomOrthogonal(5, 9), [1, 2, 3, 4, 5]);
  const mu = [0.1, -2, 3, 0, 7];
  close(frechetDistance(mu, sigma, mu, sigma), 0, 1e-9, 'identical');
  // 1-D: (μ1 − μ2)² + (σ1 − σ2)²
  close(frechetDistance([1], [4], [3], [9]), 4 + 1, 1e-12, '1-D');
});

test('Fréchet distance: commuting covariances give Σ(√a − √b)² + ‖Δμ‖²', () => {
  const n = 20;
  const q = randomOrthogonal(n, 17);
  const a = Array.from({ length: n }, (_, i) => 0.5 + i);
  const b = Array.from({ length: n }, (_, i) => 3 + ((i * 7) % 5));
  const mu1 = Array.from({ length: n }, (_, i) => i / 10);
  const mu2 = Array.from({ length: n }, (_, i) => i / 10 + (i % 2 === 0 ? 1 : -0.5));
  let expected = 0;
  for (let i = 0; i < n; i++)
    expected += (Math.sqrt(a[i]!) - Math.sqrt(b[i]!)) ** 2 + (mu1[i]! - mu2[i]!) ** 2;
  close(frechetDistance(mu1, fromEigen(q, a), mu2, fromEigen(q, b)), expected, 1e-9, 'commuting');
});

test('Fréchet distance: non-commuting 2x2 case against tr√(S1S2) = √(tr(S1S2) + 2√(det S1 det S2))', () => {
  // S1 = [[2, 1], [1, 2]], S2 = [[3, 0], [0, 1]]: S1S2 = [[6, 1], [3, 2]], tr 8, det S1 det S2 = 9.
  const fd = frechetDistance([0, 0], [2, 1, 1, 2], [0, 0], [3, 0, 0, 1]);
  close(fd, 8 - 2 * Math.sqrt(14), 1e-12, '2x2');
  // A singular (rank-1) covariance is fine: √ of a PSD matrix with a zero eigenvalue.
  close(frechetDistance([0, 0], [1, 1, 1, 1], [0, 0], [1, 1, 1, 1]), 0, 1e-9, 'rank 1');
  assert.throws(() => frechetDistance([0], [1, 0, 0, 1], [0], [1]), /dimension mismatch/);
});

test('featureStats: mean and n − 1 covariance; fvd on hand-computed features', async () => {
  const s = featureStats([
    [0, 0],
    [2, 0],
    [0, 2],
    [2, 2],
  ]);
  assert.deepEqual([...s.mu], [1, 1]);
  assert.deepEqual([...s.sigma], [4 / 3, 0, 0, 4 / 3]);
  assert.throws(() => featureStats([[1, 2]]), /at least 2/);
  // Real features as above (μ = (1, 1), Σ = 4/3 I); fake ones twice as spread around (3, 3) (Σ = 16/3 I):
  // FVD = ‖(2, 2)‖² + 2 (√(4/3) − √(16/3))² = 8 + 8/3.
  const table = new Map<RgbVideo, number[]>();
  const video = (f: number[]): RgbVideo => {
    const v: RgbVideo = { frames: [], width: 1, height: 1 };
    table.set(v, f);
    return v;
  };
  const extractor: VideoFeatureExtractor = {
    extract: async (videos) => videos.map((v) => Float32Array.from(table.get(v)!)),
  };
  const real = [
    [0, 0],
    [2, 0],
    [0, 2],
    [2, 2],
  ].map(video);
  const fake = [
    [1, 1],
    [5, 1],
    [1, 5],
    [5, 5],
  ].map(video);
  close(await fvd(real, fake, extractor), 8 + 8 / 3, 1e-9, 'fvd');
  await assert.rejects(fvd(real.slice(0, 1), fake, extractor), /at least 2 videos per set/);
});

test('I3DFeatureExtractor feeds [N, 3, T, 224, 224] in [-1, 1] and reads [N, F] features', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-i3d-'));
  try {
    const path = join(dir, 'i3d.onnx');
    // Stand-in "I3D": the per-channel mean over T, H, W, so the features are known exactly.
    writeOnnxModel(path, {
      inputs: [['video', ['N', 3, 4, 224, 224]]],
      outputs: [['features', ['N', 3]]],
      nodes: [
        {
          op: 'ReduceMean',
          inputs: ['video'],
          outputs: ['features'],
          ints: { axes: [2, 3, 4] },
          int: { keepdims: 0 },
        },
      ],
    });
    const ex = await I3DFeatureExtractor.load(path, { batchSize: 2 });
    assert.equal(ex.numFrames, 4);
    const clip = (rgb: [number, number, number], n = 5): RgbVideo => ({
      frames: Array.from({ length: n }, () => solidFrame(40, 30, rgb)),
      width: 40,
      height: 30,
    });
    const feats = await ex.extract([clip([0, 255, 51]), clip([128, 10, 200]), clip([255, 255, 255])]);
    assert.equal(feats.length, 3);
    const expect = (rgb: number[]): number[] => rgb.map((c) => c / 127.5 - 1);
    feats.forEach((f, i) => {
      const want = expect(
        [
          [0, 255, 51],
          [128, 10, 200],
          [255, 255, 255],
        ][i]!,
      );
      // float32 mean over 200k values inside onnxruntime: ~1e-4 round-off.
      f.forEach((v, c) => close(v, want[c]!, 1e-3, `video ${i} channel ${c}`));
    });
    await assert.rejects(ex.extract([clip([1, 2, 3], 3)]), /has 3 frames, the model needs 4/);
    await ex.dispose();
    await assert.rejects(I3DFeatureExtractor.load(join(dir, 'missing.onnx')), /cannot load ONNX model/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
