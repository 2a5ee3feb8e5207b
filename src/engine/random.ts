import { KinemaError } from '../errors.js';
// Seeded, reproducible random numbers: the Philox4x32-10 counter-based generator (Salmon et al., "Parallel
// Random Numbers: As Easy as 1, 2, 3", SC'11). The bit stream is pure 32-bit integer arithmetic, so a given
// seed yields the same numbers on every machine; the generator state is a small JSON string, so training
// checkpoints can resume the exact stream.
//
// Stream layout: the 64-bit seed is the Philox key (low word first); block i of four uint32 outputs is
// philox4x32_10(counter = i as a 128-bit little-endian integer, key). Outputs are consumed in order.
// uniform(): top 24 bits of one uint32 → k · 2^-24 in [0, 1), exact in float32.
// normal(): Box–Muller on pairs of uint32 (u1 = (a + 0.5) · 2^-32 ∈ (0, 1), u2 = b · 2^-32) giving
// r·cos(2πu2), r·sin(2πu2) with r = sqrt(−2 ln u1), computed in float64 and rounded to float32; an odd count
// drops the last sine. The transcendental functions are V8's (fdlibm-derived), identical across platforms.

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;
const TWO_POW_MINUS_24 = 2 ** -24;
const TWO_POW_MINUS_32 = 2 ** -32;
const STATE_ALGORITHM = 'philox4x32-10';

/** High 32 bits of the 64-bit product of two uint32 values (JS numbers are exact only to 2^53). */
function mulHi(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lh = aLo * bHi;
  const hl = aHi * bLo;
  const mid = ((aLo * bLo) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (aHi * bHi + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** One Philox4x32-10 block: writes the four output words for (counter, key) to out[offset..offset+3]. */
function philoxBlock(
  counter: ArrayLike<number>,
  k0In: number,
  k1In: number,
  out: Uint32Array,
  offset: number,
): void {
  let c0 = counter[0]! >>> 0;
  let c1 = counter[1]! >>> 0;
  let c2 = counter[2]! >>> 0;
  let c3 = counter[3]! >>> 0;
  let k0 = k0In >>> 0;
  let k1 = k1In >>> 0;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) >>> 0;
      k1 = (k1 + PHILOX_W1) >>> 0;
    }
    const hi0 = mulHi(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulHi(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[offset] = c0;
  out[offset + 1] = c1;
  out[offset + 2] = c2;
  out[offset + 3] = c3;
}

/** Philox4x32-10 as a pure function (the Random123 known-answer tests use this form). */
export function philox4x32(counter: ArrayLike<number>, key: ArrayLike<number>): Uint32Array {
  if (counter.length !== 4 || key.length !== 2)
    throw new KinemaError('RANDOM_BAD_STATE', 'philox4x32: counter needs 4 words, key 2');
  const out = new Uint32Array(4);
  philoxBlock(counter, key[0]!, key[1]!, out, 0);
  return out;
}

function isUint32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

function seedToKey(seed: number | bigint): [number, number] {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new KinemaError(
        'RANDOM_BAD_STATE',
        `Generator: seed must be a non-negative safe integer, got ${seed}`,
      );
    }
    return [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
  }
  if (seed < 0n || seed >= 1n << 64n)
    throw new KinemaError('RANDOM_BAD_STATE', `Generator: bigint seed must fit in 64 bits, got ${seed}`);
  return [Number(seed & 0xffffffffn), Number(seed >> 32n)];
}

function checkCount(what: string, count: number): void {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new KinemaError(
      'RANDOM_BAD_STATE',
      `Generator.${what}: count must be a non-negative integer, got ${count}`,
    );
  }
}

/** A seeded Philox4x32-10 stream with uniform and standard-normal float32 draws. */
export class Generator {
  #key: [number, number];
  /** Counter of the buffered block (128-bit, little-endian words). */
  #counter = new Uint32Array(4);
  /** The buffered block's four outputs and how many of them are used. */
  #block = new Uint32Array(4);
  #used = 0;

  constructor(seed: number | bigint) {
    this.#key = seedToKey(seed);
    philoxBlock(this.#counter, this.#key[0], this.#key[1], this.#block, 0);
  }

  /** Raw uint32 outputs from the stream. */
  uint32(count: number): Uint32Array {
    checkCount('uint32', count);
    const out = new Uint32Array(count);
    let i = 0;
    const block = this.#block;
    while (i < count) {
      if (this.#used === 4) this.#advance();
      let used = this.#used;
      const end = Math.min(count, i + 4 - used);
      while (i < end) out[i++] = block[used++]!;
      this.#used = used;
    }
    return out;
  }

  /** Uniform float32 in [0, 1): multiples of 2^-24. */
  uniform(count: number): Float32Array {
    checkCount('uniform', count);
    const bits = this.uint32(count);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = (bits[i]! >>> 8) * TWO_POW_MINUS_24;
    return out;
  }

  /** Standard normal float32 (Box–Muller; two uint32 per pair of outputs). */
  normal(count: number): Float32Array {
    checkCount('normal', count);
    const pairs = Math.ceil(count / 2);
    const bits = this.uint32(2 * pairs);
    const out = new Float32Array(count);
    for (let p = 0; p < pairs; p++) {
      const u1 = (bits[2 * p]! + 0.5) * TWO_POW_MINUS_32;
      const u2 = bits[2 * p + 1]! * TWO_POW_MINUS_32;
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      out[2 * p] = r * Math.cos(theta);
      if (2 * p + 1 < count) out[2 * p + 1] = r * Math.sin(theta);
    }
    return out;
  }

  /** JSON string with the key, the buffered block's counter and how many of its outputs were used. */
  getState(): string {
    return JSON.stringify({
      algorithm: STATE_ALGORITHM,
      key: [...this.#key],
      counter: [...this.#counter],
      used: this.#used,
    });
  }

  /** Restores a state from getState(); the stream continues exactly where it was. */
  setState(s: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(s);
    } catch (e) {
      throw new KinemaError(
        'RANDOM_BAD_STATE',
        `Generator.setState: state is not JSON (${(e as Error).message})`,
      );
    }
    const st = parsed as { algorithm?: unknown; key?: unknown; counter?: unknown; used?: unknown } | null;
    if (typeof st !== 'object' || st === null || st.algorithm !== STATE_ALGORITHM) {
      throw new KinemaError(
        'RANDOM_BAD_STATE',
        `Generator.setState: expected an object with algorithm "${STATE_ALGORITHM}"`,
      );
    }
    const { key, counter, used } = st;
    if (!Array.isArray(key) || key.length !== 2 || !key.every(isUint32)) {
      throw new KinemaError('RANDOM_BAD_STATE', 'Generator.setState: "key" must be two uint32 words');
    }
    if (!Array.isArray(counter) || counter.length !== 4 || !counter.every(isUint32)) {
      throw new KinemaError('RANDOM_BAD_STATE', 'Generator.setState: "counter" must be four uint32 words');
    }
    if (typeof used !== 'number' || !Number.isInteger(used) || used < 0 || used > 4) {
      throw new KinemaError('RANDOM_BAD_STATE', 'Generator.setState: "used" must be an integer in [0, 4]');
    }
    this.#key = [key[0], key[1]];
    this.#counter.set(counter);
    this.#used = used;
    philoxBlock(this.#counter, this.#key[0], this.#key[1], this.#block, 0);
  }

  #advance(): void {
    const c = this.#counter;
    for (let w = 0; w < 4; w++) {
      c[w] = (c[w]! + 1) >>> 0;
      if (c[w] !== 0) break;
    }
    philoxBlock(c, this.#key[0], this.#key[1], this.#block, 0);
    this.#used = 0;
  }
}
