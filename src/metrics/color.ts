// OpenCV-exact 8-bit image operations used by the SCuts detector (cv2.resize INTER_LINEAR, cvtColor to HSV).
// Written to reproduce OpenCV 4.x's integer arithmetic (as built without IPP on x86-64), so that PySceneDetect's
// statistics can be matched to the last bit.

const COEF_BITS = 11;
const COEF_SCALE = 1 << COEF_BITS;

function saturateShort(v: number): number {
  // saturate_cast<short>(float): round half to even (cvRound), then clamp.
  const r = Math.round(v);
  const even = Math.abs(v - Math.trunc(v)) === 0.5 ? 2 * Math.round(v / 2) : r;
  return Math.max(-32768, Math.min(32767, even));
}

/** Source index and fixed-point weight pair for each destination coordinate (OpenCV's xofs/alpha, yofs/beta). */
function linearTaps(
  srcSize: number,
  dstSize: number,
  clampSource: boolean,
): { ofs: Int32Array; w: Int16Array } {
  const scale = 1 / (dstSize / srcSize);
  const ofs = new Int32Array(dstSize);
  const w = new Int16Array(dstSize * 2);
  for (let d = 0; d < dstSize; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (clampSource && s < 0) {
      f = 0;
      s = 0;
    }
    if (clampSource && s >= srcSize - 1) {
      f = 0;
      s = srcSize - 1;
    }
    ofs[d] = s;
    w[d * 2] = saturateShort(Math.fround(1 - f) * COEF_SCALE);
    w[d * 2 + 1] = saturateShort(f * COEF_SCALE);
  }
  return { ofs, w };
}

function mulHi16(a: number, b: number): number {
  return (a * b) >> 16;
}

function sat16(v: number): number {
  return v < -32768 ? -32768 : v > 32767 ? 32767 : v;
}

/** Horizontal pass of one row: int sums S[sx]*a0 + S[sx+cn]*a1 (OpenCV HResizeLinear, exact integers). */
function resizeRowH(
  src: Uint8Array,
  rowStart: number,
  cn: number,
  xt: { ofs: Int32Array; w: Int16Array },
  out: Int32Array,
): void {
  const dw = xt.ofs.length;
  for (let dx = 0; dx < dw; dx++) {
    const sx = xt.ofs[dx]! * cn + rowStart;
    const a0 = xt.w[dx * 2]!;
    const a1 = xt.w[dx * 2 + 1]!;
    for (let k = 0; k < cn; k++) {
      const p0 = src[sx + k]!;
      out[dx * cn + k] = a1 === 0 ? p0 * a0 : p0 * a0 + src[sx + k + cn]! * a1;
    }
  }
}

/** Vertical pass: OpenCV's VResizeLinearVec_32s8u (128-bit SIMD lanes) with the scalar FixedPtCast tail. */
function resizeRowV(
  s0: Int32Array,
  s1: Int32Array,
  b0: number,
  b1: number,
  dst: Uint8Array,
  off: number,
): void {
  const width = s0.length;
  let x = 0;
  const simd = (i: number): number => {
    const v = sat16(mulHi16(sat16(s0[i]! >> 4), b0) + mulHi16(sat16(s1[i]! >> 4), b1));
    const r = sat16(v + 2) >> 2;
    return r < 0 ? 0 : r > 255 ? 255 : r;
  };
  for (; x <= width - 16; x += 16) for (let i = x; i < x + 16; i++) dst[off + i] = simd(i);
  for (; x < width - 8; x += 8) for (let i = x; i < x + 8; i++) dst[off + i] = simd(i);
  for (; x < width; x++) {
    const v = (s0[x]! * b0 + s1[x]! * b1 + (1 << (COEF_BITS * 2 - 1))) >> (COEF_BITS * 2);
    dst[off + x] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
}

/** OpenCV's resizeAreaFast for an exact 2× downscale (which INTER_LINEAR switches to): rounded 2×2 means. */
function halveArea(src: Uint8Array, width: number, cn: number, dw: number, dh: number): Uint8Array {
  const dst = new Uint8Array(dw * dh * cn);
  const stride = width * cn;
  for (let dy = 0; dy < dh; dy++) {
    const r0 = dy * 2 * stride;
    const r1 = r0 + stride;
    for (let dx = 0; dx < dw; dx++) {
      for (let k = 0; k < cn; k++) {
        const c = dx * 2 * cn + k;
        dst[(dy * dw + dx) * cn + k] =
          (src[r0 + c]! + src[r0 + c + cn]! + src[r1 + c]! + src[r1 + c + cn]! + 2) >> 2;
      }
    }
  }
  return dst;
}

/**
 * cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR) for an 8-bit image with `cn` interleaved channels.
 * Returns the input itself when the size is unchanged (OpenCV copies).
 */
export function resizeLinear(
  src: Uint8Array,
  width: number,
  height: number,
  cn: number,
  dw: number,
  dh: number,
): Uint8Array {
  if (dw === width && dh === height) return src;
  if (1 / (dw / width) === 2 && 1 / (dh / height) === 2) return halveArea(src, width, cn, dw, dh);
  const xt = linearTaps(width, dw, true);
  const yt = linearTaps(height, dh, false);
  const dst = new Uint8Array(dw * dh * cn);
  const rowCache = new Map<number, Int32Array>();
  const hRow = (sy: number): Int32Array => {
    const y = Math.max(0, Math.min(height - 1, sy));
    let r = rowCache.get(y);
    if (!r) {
      r = new Int32Array(dw * cn);
      resizeRowH(src, y * width * cn, cn, xt, r);
      if (rowCache.size > 4) rowCache.delete(rowCache.keys().next().value!);
      rowCache.set(y, r);
    }
    return r;
  };
  for (let dy = 0; dy < dh; dy++) {
    const sy = yt.ofs[dy]!;
    resizeRowV(hRow(sy), hRow(sy + 1), yt.w[dy * 2]!, yt.w[dy * 2 + 1]!, dst, dy * dw * cn);
  }
  return dst;
}

const HSV_SHIFT = 12;
const sdivTable = new Int32Array(256);
const hdivTable180 = new Int32Array(256);
for (let i = 1; i < 256; i++) {
  sdivTable[i] = Math.round((255 << HSV_SHIFT) / i);
  hdivTable180[i] = Math.round((180 << HSV_SHIFT) / (6 * i));
}

/**
 * cv2.cvtColor(..., COLOR_RGB2HSV) for 8-bit RGB24 (H in [0,180), S and V in [0,255]), written as three planes.
 * `bgr` selects BGR input order instead.
 */
export function rgbToHsvPlanes(
  rgb: Uint8Array,
  pixels: number,
  hue: Uint8Array,
  sat: Uint8Array,
  val: Uint8Array,
  bgr = false,
): void {
  const ri = bgr ? 2 : 0;
  const bi = bgr ? 0 : 2;
  const half = 1 << (HSV_SHIFT - 1);
  for (let p = 0, i = 0; p < pixels; p++, i += 3) {
    const r = rgb[i + ri]!;
    const g = rgb[i + 1]!;
    const b = rgb[i + bi]!;
    const v = Math.max(r, g, b);
    const diff = v - Math.min(r, g, b);
    const s = (diff * sdivTable[v]! + half) >> HSV_SHIFT;
    let h: number;
    if (v === r) h = g - b;
    else if (v === g) h = b - r + 2 * diff;
    else h = r - g + 4 * diff;
    h = (h * hdivTable180[diff]! + half) >> HSV_SHIFT;
    if (h < 0) h += 180;
    hue[p] = h > 255 ? 255 : h;
    sat[p] = s;
    val[p] = v;
  }
}
