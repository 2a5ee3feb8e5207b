import { KinemaError } from '../errors.js';
// Small image operations shared by the metrics: grayscale conversion, Gaussian blur, box filtering and the
// resamplers whose exact semantics the reference metrics depend on.
//
// - `resizeBilinear` / `resizeRgbBilinear`: half-pixel-centre bilinear interpolation without antialiasing, as
//   PyTorch `interpolate(mode='bilinear', align_corners=False)` and OpenCV `INTER_LINEAR` compute it (source
//   coordinate `(dst + 0.5) * in / out - 0.5`, clamped at 0). `resizeRgbBilinear` rounds half to even and clamps
//   to [0, 255] like torchvision's `F.resize` on a uint8 tensor.
// - `resizeRgbPil`: Pillow's `Image.resize(..., BICUBIC)` on an 8-bit RGB image, reproduced from the algorithm of
//   Pillow's `Resample.c` (separable convolution whose support grows with the downscale factor, i.e. antialiased;
//   cubic kernel a = -0.5; 22-bit fixed-point coefficients; horizontal pass then vertical pass, each clipped to
//   uint8), which is what transformers' `CLIPImageProcessor` uses.

/** A video as interleaved RGB24 frames (width*height*3 bytes each, row-major). */
export interface RgbVideo {
  readonly frames: readonly Uint8Array[];
  readonly width: number;
  readonly height: number;
}

/** Luma of interleaved RGB24 with the BT.601 weights (OpenCV `RGB2GRAY`), unrounded, in [0, 255]. */
export function rgbToGray(rgb: Uint8Array, width: number, height: number): Float32Array {
  const n = width * height;
  if (rgb.length !== n * 3) {
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `rgbToGray: expected ${n * 3} bytes for ${width}x${height} RGB, got ${rgb.length}`,
    );
  }
  const out = new Float32Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    out[i] = 0.299 * rgb[j]! + 0.587 * rgb[j + 1]! + 0.114 * rgb[j + 2]!;
  }
  return out;
}

/** Normalised 1-D Gaussian kernel of the given radius (default ceil(3 sigma)). */
export function gaussianKernel(sigma: number, radius = Math.max(1, Math.ceil(3 * sigma))): Float32Array {
  const k = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) {
    const w = Math.exp((-i * i) / (2 * sigma * sigma));
    k[i + radius] = w;
    sum += w;
  }
  for (let i = 0; i < k.length; i++) k[i]! /= sum;
  return k;
}

function clampIndex(i: number, n: number): number {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/** Separable convolution of a single-channel image with a symmetric kernel; borders are replicated. */
export function blurSeparable(
  src: Float32Array,
  width: number,
  height: number,
  kernel: Float32Array,
): Float32Array {
  const r = (kernel.length - 1) >> 1;
  const tmp = new Float32Array(width * height);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      let s = 0;
      for (let i = -r; i <= r; i++) s += kernel[i + r]! * src[row + clampIndex(x + i, width)]!;
      tmp[row + x] = s;
    }
  }
  for (let y = 0; y < height; y++) {
    for (let i = -r; i <= r; i++) {
      const w = kernel[i + r]!;
      const srcRow = clampIndex(y + i, height) * width;
      const dstRow = y * width;
      for (let x = 0; x < width; x++) out[dstRow + x]! += w * tmp[srcRow + x]!;
    }
  }
  return out;
}

/**
 * Box sum over a (2r+1)x(2r+1) window of an interleaved `channels`-channel float image, borders replicated.
 * Unnormalised (a sum, not a mean). Running sums are kept in float64.
 */
export function boxSum(
  src: Float32Array,
  width: number,
  height: number,
  channels: number,
  r: number,
): Float32Array {
  const tmp = new Float32Array(src.length);
  const out = new Float32Array(src.length);
  const acc = new Float64Array(channels);
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    acc.fill(0);
    for (let i = -r; i <= r; i++) {
      const o = row + clampIndex(i, width) * channels;
      for (let c = 0; c < channels; c++) acc[c]! += src[o + c]!;
    }
    for (let x = 0; x < width; x++) {
      const o = row + x * channels;
      for (let c = 0; c < channels; c++) tmp[o + c] = acc[c]!;
      const add = row + clampIndex(x + r + 1, width) * channels;
      const sub = row + clampIndex(x - r, width) * channels;
      for (let c = 0; c < channels; c++) acc[c]! += src[add + c]! - src[sub + c]!;
    }
  }
  const stride = width * channels;
  const col = new Float64Array(stride);
  for (let i = -r; i <= r; i++) {
    const o = clampIndex(i, height) * stride;
    for (let k = 0; k < stride; k++) col[k]! += tmp[o + k]!;
  }
  for (let y = 0; y < height; y++) {
    const o = y * stride;
    for (let k = 0; k < stride; k++) out[o + k] = col[k]!;
    const add = clampIndex(y + r + 1, height) * stride;
    const sub = clampIndex(y - r, height) * stride;
    for (let k = 0; k < stride; k++) col[k]! += tmp[add + k]! - tmp[sub + k]!;
  }
  return out;
}

interface LinearTaps {
  i0: Int32Array;
  i1: Int32Array;
  w1: Float32Array;
}

/** Half-pixel-centre linear interpolation taps (PyTorch align_corners=False / OpenCV INTER_LINEAR). */
function linearTaps(inSize: number, outSize: number): LinearTaps {
  const scale = inSize / outSize;
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w1 = new Float32Array(outSize);
  for (let d = 0; d < outSize; d++) {
    let s = (d + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    let a = Math.floor(s);
    if (a > inSize - 1) a = inSize - 1;
    i0[d] = a;
    i1[d] = a + 1 < inSize ? a + 1 : inSize - 1;
    w1[d] = s - a;
  }
  return { i0, i1, w1 };
}

/** Bilinear resize of a single-channel float image (no antialiasing). */
export function resizeBilinear(
  src: Float32Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): Float32Array {
  if (outWidth === width && outHeight === height) return src.slice();
  const tx = linearTaps(width, outWidth);
  const ty = linearTaps(height, outHeight);
  const out = new Float32Array(outWidth * outHeight);
  for (let y = 0; y < outHeight; y++) {
    const r0 = ty.i0[y]! * width;
    const r1 = ty.i1[y]! * width;
    const wy = ty.w1[y]!;
    for (let x = 0; x < outWidth; x++) {
      const a = tx.i0[x]!;
      const b = tx.i1[x]!;
      const wx = tx.w1[x]!;
      const top = src[r0 + a]! + (src[r0 + b]! - src[r0 + a]!) * wx;
      const bot = src[r1 + a]! + (src[r1 + b]! - src[r1 + a]!) * wx;
      out[y * outWidth + x] = top + (bot - top) * wy;
    }
  }
  return out;
}

/** Round half to even (torch.round / numpy.round semantics). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Bilinear resize of interleaved RGB24 (no antialiasing), rounded half to even and clamped to uint8, like
 * torchvision `F.resize(uint8_tensor, size, antialias=False)`.
 */
export function resizeRgbBilinear(
  src: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  if (outWidth === width && outHeight === height) return src.slice();
  const tx = linearTaps(width, outWidth);
  const ty = linearTaps(height, outHeight);
  const out = new Uint8Array(outWidth * outHeight * 3);
  for (let y = 0; y < outHeight; y++) {
    const r0 = ty.i0[y]! * width * 3;
    const r1 = ty.i1[y]! * width * 3;
    const wy = ty.w1[y]!;
    for (let x = 0; x < outWidth; x++) {
      const a = tx.i0[x]! * 3;
      const b = tx.i1[x]! * 3;
      const wx = tx.w1[x]!;
      const o = (y * outWidth + x) * 3;
      for (let c = 0; c < 3; c++) {
        const top = src[r0 + a + c]! + (src[r0 + b + c]! - src[r0 + a + c]!) * wx;
        const bot = src[r1 + a + c]! + (src[r1 + b + c]! - src[r1 + a + c]!) * wx;
        const v = roundHalfEven(top + (bot - top) * wy);
        out[o + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return out;
}

const PIL_PRECISION_BITS = 22;

function pilBicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface PilCoeffs {
  ksize: number;
  bounds: Int32Array; // per output: [xmin, count]
  k: Int32Array; // fixed-point coefficients, ksize per output
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bicubic filter over the whole input range. */
function pilCoeffs(inSize: number, outSize: number): PilCoeffs {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const count = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let sum = 0;
    for (let x = 0; x < count; x++) {
      w[x] = pilBicubic((x + xmin - center + 0.5) * ss);
      sum += w[x]!;
    }
    for (let x = 0; x < count; x++) {
      const v = sum !== 0 ? w[x]! / sum : w[x]!;
      const f = v * (1 << PIL_PRECISION_BITS);
      k[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + f) : Math.trunc(0.5 + f);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { ksize, bounds, k };
}

function clip8(ss: number): number {
  const v = Math.floor(ss / (1 << PIL_PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Pillow `Image.resize((outWidth, outHeight), Image.BICUBIC)` of an 8-bit RGB image (interleaved RGB24).
 * Bit-exact reproduction of Pillow's 8-bit two-pass resampler (see the file header).
 */
export function resizeRgbPil(
  src: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  const vert = pilCoeffs(height, outHeight);
  const yFirst = vert.bounds[0]!;
  const yLast = vert.bounds[(outHeight - 1) * 2]! + vert.bounds[(outHeight - 1) * 2 + 1]!;
  let img = src;
  let rows = height;
  let rowOffset = 0;
  if (outWidth !== width) {
    const hz = pilCoeffs(width, outWidth);
    rows = yLast - yFirst;
    const tmp = new Uint8Array(outWidth * rows * 3);
    const half = 1 << (PIL_PRECISION_BITS - 1);
    for (let yy = 0; yy < rows; yy++) {
      const inRow = (yy + yFirst) * width * 3;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = hz.bounds[xx * 2]!;
        const count = hz.bounds[xx * 2 + 1]!;
        const kb = xx * hz.ksize;
        let s0 = half;
        let s1 = half;
        let s2 = half;
        for (let x = 0; x < count; x++) {
          const kv = hz.k[kb + x]!;
          const p = inRow + (x + xmin) * 3;
          s0 += src[p]! * kv;
          s1 += src[p + 1]! * kv;
          s2 += src[p + 2]! * kv;
        }
        const o = (yy * outWidth + xx) * 3;
        tmp[o] = clip8(s0);
        tmp[o + 1] = clip8(s1);
        tmp[o + 2] = clip8(s2);
      }
    }
    img = tmp;
    rowOffset = yFirst;
  }
  if (outHeight === height) return img === src ? src.slice() : img;
  return pilVertical(img, outWidth, rowOffset, outHeight, vert);
}

function pilVertical(
  img: Uint8Array,
  width: number,
  rowOffset: number,
  outHeight: number,
  c: PilCoeffs,
): Uint8Array {
  const out = new Uint8Array(width * outHeight * 3);
  const half = 1 << (PIL_PRECISION_BITS - 1);
  const stride = width * 3;
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = c.bounds[yy * 2]! - rowOffset;
    const count = c.bounds[yy * 2 + 1]!;
    const kb = yy * c.ksize;
    for (let i = 0; i < stride; i++) {
      let s = half;
      for (let y = 0; y < count; y++) s += img[(y + ymin) * stride + i]! * c.k[kb + y]!;
      out[yy * stride + i] = clip8(s);
    }
  }
  return out;
}
