import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, f16ToF32, f32ToBF16, f32ToF16, f8E4M3ToF32, f8E5M2ToF32 } from '../../src/io/half.js';

const ALL_HALF = Uint16Array.from({ length: 65536 }, (_, i) => i);

function bitsToF32(bits: number): number {
  return new Float32Array(Uint32Array.of(bits).buffer)[0]!;
}

function f32Bits(values: number[]): Float32Array {
  return Float32Array.from(values);
}

/** binary16 value from its fields, written independently of the library's bit manipulation. */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * Math.pow(2, -24);
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * Math.pow(2, exponent - 15);
}

test('f16ToF32 decodes all 65,536 bit patterns exactly (sign of zero included)', () => {
  const out = f16ToF32(ALL_HALF);
  for (let h = 0; h < 65536; h++) {
    const expected = halfValue(h);
    if (Number.isNaN(expected)) assert.ok(Number.isNaN(out[h]), `0x${h.toString(16)} should be NaN`);
    else assert.ok(Object.is(out[h], expected), `0x${h.toString(16)}: ${out[h]} vs ${expected}`);
  }
});

test('f16 → f32 → f16 is the identity for every non-NaN pattern, NaN stays NaN', () => {
  const back = f32ToF16(f16ToF32(ALL_HALF));
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN)
      assert.ok((back[h]! & 0x7c00) === 0x7c00 && (back[h]! & 0x3ff) !== 0, `NaN 0x${h.toString(16)}`);
    else assert.equal(back[h], h, `0x${h.toString(16)}`);
  }
});

test('f32ToF16 rounds to nearest even at ties, overflows to inf, handles subnormals', () => {
  // Expected bits checked with numpy's float32 → float16 cast.
  const cases: [number, number][] = [
    [0x3f801000, 0x3c00], // 1 + 2^-11: tie between 1 and 1 + 2^-10 → even (1)
    [0x3f803000, 0x3c02], // 1 + 3·2^-11: tie → even (1 + 2^-9)
    [0x3f801001, 0x3c01], // just above the tie → up
    [0x477fe000, 0x7bff], // 65504, the largest finite half
    [0x477feffd, 0x7bff], // 65519.99 rounds down
    [0x477ff000, 0x7c00], // 65520 is a tie between 65504 and 65536 → inf
    [0x7f7fffff, 0x7c00], // float32 max → inf
    [0x33800000, 0x0001], // 2^-24, the smallest subnormal
    [0x33000000, 0x0000], // 2^-25: tie between 0 and 2^-24 → 0
    [0x33000001, 0x0001], // just above → 2^-24
    [0x33c00000, 0x0002], // 3·2^-25: tie between 1 and 2 units → 2
    [0x387fe000, 0x0400], // 2^-14 − 2^-25: tie between largest subnormal and smallest normal → normal
    [0x80000000, 0x8000], // −0
    [0x7f800000, 0x7c00],
    [0xff800000, 0xfc00],
    [0x322bcc77, 0x0000], // 1e-8 underflows
    [0x3dcccccd, 0x2e66], // 0.1
    [0xc0490fd0, 0xc248], // −3.14159
  ];
  const src = new Float32Array(new Uint32Array(cases.map(([b]) => b)).buffer);
  assert.deepEqual(
    [...f32ToF16(src)],
    cases.map(([, h]) => h),
  );
  const nan = f32ToF16(new Float32Array(new Uint32Array([0x7fc00000, 0xffc00000, 0x7f800001]).buffer));
  for (const h of nan) assert.ok((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0, `0x${h.toString(16)} not NaN`);
  assert.equal(nan[1]! & 0x8000, 0x8000);
});

test('f32ToF16 matches nearest-even by search over all halves, and a numpy checksum', () => {
  const positives = f16ToF32(Uint16Array.from({ length: 0x7c00 }, (_, i) => i)); // 0 … 65504, ascending
  const n = 200_000;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = Number((BigInt(i) * 2654435761n + 12345n) % 2n ** 32n);
  const halves = f32ToF16(new Float32Array(bits.buffer));
  let checksum = 0;
  for (let i = 0; i < n; i++) {
    const x = bitsToF32(bits[i]!);
    if (Number.isNaN(x)) continue;
    checksum += halves[i]! * ((i % 65521) + 1);
    const a = Math.abs(x);
    let expected: number;
    if (a >= 65520) expected = 0x7c00;
    else {
      let lo = 0; // largest index with positives[lo] <= a
      let hi = 0x7bff;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (positives[mid]! <= a) lo = mid;
        else hi = mid - 1;
      }
      const up = Math.min(lo + 1, 0x7bff);
      const dLo = a - positives[lo]!;
      const dUp = positives[up]! - a;
      expected = dUp < dLo || (dUp === dLo && up !== lo && (lo & 1) === 1) ? up : lo;
    }
    if (x < 0 || Object.is(x, -0)) expected |= 0x8000;
    assert.equal(halves[i], expected, `bits 0x${bits[i]!.toString(16)}`);
  }
  // numpy: float32(bits).astype(float16) over the same patterns, NaNs excluded, Σ h·(i mod 65521 + 1).
  assert.equal(checksum, 207128494713149);
});

test('bf16ToF32 is the top half of the float32 bits for all 65,536 patterns', () => {
  const out = new Uint32Array(bf16ToF32(ALL_HALF).buffer);
  for (let h = 0; h < 65536; h++) assert.equal(out[h], (h << 16) >>> 0);
});

test('f32ToBF16 rounds to nearest even and keeps NaN', () => {
  const cases: [number, number][] = [
    [0x3f808000, 0x3f80], // 1 + 2^-8: tie → even (1)
    [0x3f818000, 0x3f82], // 1 + 3·2^-8: tie → even
    [0x3f808001, 0x3f81], // above the tie → up
    [0x3f807fff, 0x3f80], // below the tie → down
    [0x7f7f7fff, 0x7f7f],
    [0x7f7f8000, 0x7f80], // tie with odd low bit → rounds up into inf
    [0x7f7fffff, 0x7f80], // float32 max → inf
    [0x00008000, 0x0000], // subnormal tie → even (0)
    [0x00018000, 0x0002], // subnormal tie with odd low bit → up
    [0x80000000, 0x8000],
    [0xff800000, 0xff80],
    [0xbf800000, 0xbf80],
  ];
  const src = new Float32Array(new Uint32Array(cases.map(([b]) => b)).buffer);
  assert.deepEqual(
    [...f32ToBF16(src)],
    cases.map(([, h]) => h),
  );
  // NaNs whose payload lives only in the low 16 bits must not collapse to infinity.
  const nan = f32ToBF16(new Float32Array(new Uint32Array([0x7f800001, 0xff800001, 0x7fc00000]).buffer));
  for (const h of nan) assert.ok((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0, `0x${h.toString(16)} not NaN`);
});

test('f32ToBF16 agrees with a distance-based nearest-even reference on pseudo-random floats', () => {
  const n = 100_000;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = Number((BigInt(i) * 2246822519n + 7n) % 2n ** 32n);
  const out = f32ToBF16(new Float32Array(bits.buffer));
  for (let i = 0; i < n; i++) {
    const x = bitsToF32(bits[i]!);
    if (Number.isNaN(x)) continue;
    const down = bits[i]! >>> 16; // truncation toward zero
    const vDown = bitsToF32(down << 16);
    const vUp = bitsToF32(((down + 1) << 16) >>> 0); // next magnitude (may be inf)
    const dDown = Math.abs(x - vDown);
    // Beyond the largest finite bfloat16 the rounding boundary is as if the next value were 2^128.
    const dUp = Number.isFinite(vUp) ? Math.abs(vUp - x) : 2 ** 128 - Math.abs(x);
    const expected = dUp < dDown || (dUp === dDown && (down & 1) === 1) ? down + 1 : down;
    assert.equal(out[i], expected, `bits 0x${bits[i]!.toString(16)}`);
  }
  assert.deepEqual([...bf16ToF32(f32ToBF16(f32Bits([1, -2, 0.5, 3])))], [1, -2, 0.5, 3]);
});

test('float8 decoders: e5m2 is the top byte of a half, e4m3fn has no infinities', () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const e5m2 = f8E5M2ToF32(all);
  const halves = f16ToF32(Uint16Array.from(all, (b) => b << 8));
  for (let b = 0; b < 256; b++)
    assert.ok(Object.is(e5m2[b], halves[b]) || (Number.isNaN(e5m2[b]) && Number.isNaN(halves[b])));
  const e4m3 = f8E4M3ToF32(Uint8Array.of(0x00, 0x01, 0x07, 0x08, 0x38, 0x7e, 0x7f, 0xfe, 0xff, 0x80, 0x78));
  assert.deepEqual([...e4m3.subarray(0, 6)], [0, 2 ** -9, 7 * 2 ** -9, 2 ** -6, 1, 448]);
  assert.ok(Number.isNaN(e4m3[6]) && Number.isNaN(e4m3[8]));
  assert.equal(e4m3[7], -448);
  assert.ok(Object.is(e4m3[9], -0));
  assert.equal(e4m3[10], 256); // exponent 15 with mantissa ≠ 7 is an ordinary number
});
