// IEEE 754 binary16 (half) and bfloat16 conversions to and from float32, working on raw bit patterns, and the
// two float8 formats of safetensors (decode only). Rounding is round-to-nearest, ties-to-even, like numpy/torch
// casts. No dependencies.

/** float32 → binary16 bits. Overflow (≥ 65520 in magnitude) gives ±inf, tiny values become subnormals or ±0. */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]!);
  return out;
}

function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) {
    if (abs === 0x7f800000) return sign | 0x7c00;
    // NaN: keep the top 10 payload bits (as numpy does), make sure the result is still a NaN.
    const payload = (abs >>> 13) & 0x3ff;
    return sign | 0x7c00 | (payload === 0 ? 1 : payload);
  }
  if (abs >= 0x477ff000) return sign | 0x7c00; // ≥ 65520 rounds to infinity
  if (abs >= 0x38800000) {
    // Normal binary16 result: rebias the exponent (127 → 15) and round away the low 13 mantissa bits.
    const rounded = abs + 0xfff + ((abs >>> 13) & 1);
    return sign | ((rounded - 0x38000000) >>> 13);
  }
  const exponent = abs >>> 23;
  if (exponent < 102) return sign; // below 2^-25: rounds to ±0
  // Subnormal binary16: value = mantissa · 2^(exponent−150), unit 2^-24 → shift right by 126 − exponent.
  const mantissa = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - exponent;
  let q = mantissa >>> shift;
  const rest = mantissa & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q++;
  return sign | q;
}

let f16Table: Uint32Array | undefined;

function f16ToF32Table(): Uint32Array {
  if (f16Table !== undefined) return f16Table;
  const table = new Uint32Array(65536);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) {
      f[0] = mantissa * 2 ** -24; // zero or subnormal, exact in float32
      table[h] = (sign | u[0]!) >>> 0;
    } else if (exponent === 31) {
      table[h] = (sign | 0x7f800000 | (mantissa << 13)) >>> 0; // inf, or NaN with its payload
    } else {
      table[h] = (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
    }
  }
  f16Table = table;
  return table;
}

/** binary16 bits → float32 (exact; NaN payloads are kept). */
export function f16ToF32(src: Uint16Array): Float32Array {
  const table = f16ToF32Table();
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return new Float32Array(out.buffer);
}

/** float32 → bfloat16 bits (the top 16 bits, rounded to nearest even). NaN stays NaN (quiet bit set). */
export function f32ToBF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = (x >>> 16) | 0x40;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bfloat16 bits → float32 (exact). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  return new Float32Array(out.buffer);
}

/** float8 e5m2 → float32 (exact): e5m2 is the top byte of a binary16. */
export function f8E5M2ToF32(src: Uint8Array): Float32Array {
  const half = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) half[i] = src[i]! << 8;
  return f16ToF32(half);
}

/** float8 e4m3fn → float32 (exact): bias 7, no infinities, S.1111.111 is NaN, max ±448. */
export function f8E4M3ToF32(src: Uint8Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    const exponent = (b >>> 3) & 0xf;
    const mantissa = b & 7;
    let v: number;
    if (exponent === 15 && mantissa === 7) v = NaN;
    else if (exponent === 0) v = mantissa * 2 ** -9;
    else v = (1 + mantissa / 8) * 2 ** (exponent - 7);
    out[i] = b & 0x80 ? -v : v;
  }
  return out;
}
