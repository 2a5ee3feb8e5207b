// YUV 4:2:0 <-> RGB24 conversion.
//
// Decoding (I420/NV12 -> RGB24) reproduces FFmpeg's swscale default path for 8-bit yuv420p -> rgb24/bgr24 at the
// same size (the unscaled SIMD converter that OpenCV's VideoCapture and `ffmpeg -pix_fmt rgb24` use on x86-64):
// 16-bit fixed point with coefficients from swscale's ff_yuv2rgb_coeffs table, the chroma sample of each 2×2
// block taken as is (no interpolation), BT.601 limited range unless the stream says otherwise. It is bit-exact
// with Debian FFmpeg 5.1 + OpenCV 4.6 on the SCuts fixture clips.

/** Matrix coefficients a stream may declare (WebCodecs names); null = unspecified. */
export type YuvMatrix = 'bt601' | 'bt709' | 'bt2020' | 'fcc' | 'smpte240m';

/** swscale's ff_yuv2rgb_coeffs rows: [crv, cbu, cgu, cgv], 16.16 fixed point. */
const INVERSE_COEFFICIENTS: Record<YuvMatrix, readonly [number, number, number, number]> = {
  bt601: [104597, 132201, 25675, 53279],
  bt709: [117489, 138438, 13975, 34925],
  bt2020: [110013, 140363, 12277, 42626],
  fcc: [104448, 132798, 24759, 53109],
  smpte240m: [117579, 136230, 16907, 35559],
};

/** Maps a WebCodecs / container colour-matrix name to our matrix; BT.601 for unknown or unspecified ones. */
export function matrixFromName(name: string | null | undefined): YuvMatrix {
  switch (name) {
    case 'bt709':
      return 'bt709';
    case 'bt2020-ncl':
    case 'bt2020-cl':
    case 'bt2020':
      return 'bt2020';
    case 'fcc':
      return 'fcc';
    case 'smpte240m':
      return 'smpte240m';
    default:
      return 'bt601';
  }
}

function roundToInt16(f: number): number {
  const r = Math.floor((f + 32768) / 65536);
  return Math.max(-32768, Math.min(32767, r));
}

function sat16(v: number): number {
  return v < -32768 ? -32768 : v > 32767 ? 32767 : v;
}

/** Lookup tables equal to swscale's per-component pmulhw products. */
interface YuvTables {
  y: Int32Array;
  ub: Int32Array;
  vr: Int32Array;
  ug: Int32Array;
  vg: Int32Array;
}

const tableCache = new Map<string, YuvTables>();

function yuvTables(matrix: YuvMatrix, fullRange: boolean): YuvTables {
  const key = `${matrix}/${fullRange}`;
  const cached = tableCache.get(key);
  if (cached) return cached;
  const [crv0, cbu0, cgu0, cgv0] = INVERSE_COEFFICIENTS[matrix];
  let [crv, cbu, cgu, cgv] = [crv0, cbu0, -cgu0, -cgv0];
  let cy = 1 << 16;
  let oy = 0;
  if (!fullRange) {
    cy = Math.floor((cy * 255) / 219);
    oy = 16 << 16;
  } else {
    // C integer division truncates toward zero.
    [crv, cbu, cgu, cgv] = [crv, cbu, cgu, cgv].map((c) => Math.trunc((c * 224) / 255)) as [
      number,
      number,
      number,
      number,
    ];
  }
  const yCoeff = roundToInt16(cy * 8192);
  const coeff = { vr: roundToInt16(crv * 8192), ub: roundToInt16(cbu * 8192) };
  const vgCoeff = roundToInt16(cgv * 8192);
  const ugCoeff = roundToInt16(cgu * 8192);
  const yOffset = roundToInt16(oy * 8);
  const t: YuvTables = {
    y: new Int32Array(256),
    ub: new Int32Array(256),
    vr: new Int32Array(256),
    ug: new Int32Array(256),
    vg: new Int32Array(256),
  };
  for (let i = 0; i < 256; i++) {
    // psllw 3; psubw offset; pmulhw coefficient (arithmetic >> 16 of the 32-bit product).
    t.y[i] = (sat16((i << 3) - yOffset) * yCoeff) >> 16;
    const c = sat16((i << 3) - 1024);
    t.ub[i] = (c * coeff.ub) >> 16;
    t.vr[i] = (c * coeff.vr) >> 16;
    t.ug[i] = (c * ugCoeff) >> 16;
    t.vg[i] = (c * vgCoeff) >> 16;
  }
  tableCache.set(key, t);
  return t;
}

/** One plane of a decoded picture inside a shared buffer. */
export interface PlaneView {
  data: Uint8Array;
  offset: number;
  stride: number;
}

export interface Yuv420Picture {
  width: number;
  height: number;
  y: PlaneView;
  /** For I420: the U plane; for NV12: the interleaved UV plane (and `v` is null). */
  u: PlaneView;
  v: PlaneView | null;
  matrix: YuvMatrix;
  fullRange: boolean;
}

function clampU8(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Converts a 4:2:0 picture (I420 or NV12) to RGB24 (`order` 'rgb' or 'bgr'), swscale-exact. */
export function yuv420ToRgb(pic: Yuv420Picture, out?: Uint8Array, order: 'rgb' | 'bgr' = 'rgb'): Uint8Array {
  const { width, height } = pic;
  const dst = out ?? new Uint8Array(width * height * 3);
  const t = yuvTables(pic.matrix, pic.fullRange);
  const [ri, bi] = order === 'rgb' ? [0, 2] : [2, 0];
  const nv12 = pic.v === null;
  const yd = pic.y.data;
  const ud = pic.u.data;
  const vd = pic.v?.data ?? ud;
  for (let row = 0; row < height; row++) {
    const yRow = pic.y.offset + row * pic.y.stride;
    const uRow = pic.u.offset + (row >> 1) * pic.u.stride;
    const vRow = nv12 ? uRow + 1 : pic.v!.offset + (row >> 1) * pic.v!.stride;
    let o = row * width * 3;
    for (let x = 0; x < width; x++, o += 3) {
      const ci = nv12 ? (x >> 1) * 2 : x >> 1;
      const u = ud[uRow + ci]!;
      const v = vd[vRow + ci]!;
      const yy = t.y[yd[yRow + x]!]!;
      const g = sat16(t.ug[u]! + t.vg[v]!);
      dst[o + ri] = clampU8(sat16(yy + t.vr[v]!));
      dst[o + 1] = clampU8(sat16(yy + g));
      dst[o + bi] = clampU8(sat16(yy + t.ub[u]!));
    }
  }
  return dst;
}

// BT.601 limited-range decode matrix, per unit of (Y-16), (U-128), (V-128), in 8-bit RGB units.
const KY = 255 / 219;
const KR_V = (255 / 224) * 1.402;
const KG_U = (-(255 / 224) * 1.772 * 0.114) / 0.587;
const KG_V = (-(255 / 224) * 1.402 * 0.299) / 0.587;
const KB_U = (255 / 224) * 1.772;

/** Least-squares chroma (u, v offsets from 128) for a mean residual (r, g, b) = RGB − luma part. */
function fitChroma(r: number, g: number, b: number): [number, number] {
  // Normal equations of min ||(r,g,b) − [0 KR_V; KG_U KG_V; KB_U 0]·(u,v)||².
  const a11 = KG_U * KG_U + KB_U * KB_U;
  const a12 = KG_U * KG_V;
  const a22 = KR_V * KR_V + KG_V * KG_V;
  const b1 = KG_U * g + KB_U * b;
  const b2 = KR_V * r + KG_V * g;
  const det = a11 * a22 - a12 * a12;
  return [(a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det];
}

/**
 * Converts RGB24 to I420 (BT.601 limited range, what decoders assume for an untagged stream). The picture is
 * `codedWidth`×`codedHeight` (≥ width×height); extra columns/rows repeat the last ones. Each 2×2 block's chroma
 * and its four lumas are fitted jointly (two rounds of least squares) so that decoding with shared chroma gives
 * the closest RGB, which keeps colour edges much sharper than plain chroma averaging.
 */
export function rgbToI420(
  rgb: Uint8Array,
  width: number,
  height: number,
  codedWidth: number = width,
  codedHeight: number = height,
): Uint8Array {
  const cw = (codedWidth + 1) >> 1;
  const ch = (codedHeight + 1) >> 1;
  const out = new Uint8Array(codedWidth * codedHeight + 2 * cw * ch);
  const uBase = codedWidth * codedHeight;
  const vBase = uBase + cw * ch;
  const px = new Float64Array(12);
  const ys = new Float64Array(4);
  const pos = new Int32Array(4);
  for (let cy = 0; cy < ch; cy++) {
    for (let cx = 0; cx < cw; cx++) {
      let n = 0;
      for (let dy = 0; dy < 2; dy++) {
        const y = cy * 2 + dy;
        if (y >= codedHeight) continue;
        for (let dx = 0; dx < 2; dx++) {
          const x = cx * 2 + dx;
          if (x >= codedWidth) continue;
          const i = (Math.min(y, height - 1) * width + Math.min(x, width - 1)) * 3;
          px[n * 3] = rgb[i]!;
          px[n * 3 + 1] = rgb[i + 1]!;
          px[n * 3 + 2] = rgb[i + 2]!;
          pos[n++] = y * codedWidth + x;
        }
      }
      const [u, v] = fitBlock(px, ys, n);
      for (let k = 0; k < n; k++) out[pos[k]!] = clampU8(Math.round(16 + ys[k]!));
      out[uBase + cy * cw + cx] = clampU8(Math.round(128 + u));
      out[vBase + cy * cw + cx] = clampU8(Math.round(128 + v));
    }
  }
  return out;
}

/** Fits chroma (u, v) and lumas ys[k] (minus 16) for the n pixels in px; returns [u, v]. */
function fitBlock(px: Float64Array, ys: Float64Array, n: number): [number, number] {
  let r = 0;
  let g = 0;
  let b = 0;
  for (let k = 0; k < n; k++) {
    r += px[k * 3]!;
    g += px[k * 3 + 1]!;
    b += px[k * 3 + 2]!;
  }
  r /= n;
  g /= n;
  b /= n;
  const luma = 0.299 * r + 0.587 * g + 0.114 * b;
  let u = (224 * (b - luma)) / (1.772 * 255);
  let v = (224 * (r - luma)) / (1.402 * 255);
  for (let round = 0; round < 2; round++) {
    let mr = 0;
    let mg = 0;
    let mb = 0;
    for (let k = 0; k < n; k++) {
      const rr = px[k * 3]! - KR_V * v;
      const gg = px[k * 3 + 1]! - KG_U * u - KG_V * v;
      const bb = px[k * 3 + 2]! - KB_U * u;
      const y = Math.min(219, Math.max(0, (rr + gg + bb) / (3 * KY)));
      ys[k] = y;
      mr += px[k * 3]! - KY * y;
      mg += px[k * 3 + 1]! - KY * y;
      mb += px[k * 3 + 2]! - KY * y;
    }
    [u, v] = fitChroma(mr / n, mg / n, mb / n);
    u = Math.min(127, Math.max(-128, u));
    v = Math.min(127, Math.max(-128, v));
  }
  for (let k = 0; k < n; k++) {
    const rr = px[k * 3]! - KR_V * v;
    const gg = px[k * 3 + 1]! - KG_U * u - KG_V * v;
    const bb = px[k * 3 + 2]! - KB_U * u;
    ys[k] = Math.min(219, Math.max(0, (rr + gg + bb) / (3 * KY)));
  }
  return [u, v];
}
