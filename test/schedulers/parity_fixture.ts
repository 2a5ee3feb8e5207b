// Helpers for the scheduler parity tests: fixture location, tensor loading, tolerance comparison.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { readJsonLenient } from '../../src/io/json.js';

export const PARITY_DIR =
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity');

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export interface SchedulerFixture {
  dir: string;
  config: Record<string, unknown>;
  tensors: Map<string, Tensor>;
  /** Names of the int64 tensors. */
  intNames: string[];
  /** A float tensor (as float32) or an int64 tensor (as numbers). */
  get(name: string): Tensor;
  ints(name: string): number[];
}

export function fixtureExists(sub: string): boolean {
  return existsSync(join(PARITY_DIR, sub));
}

export async function loadSchedulerFixture(name: string): Promise<SchedulerFixture> {
  const dir = join(PARITY_DIR, 'scheduler', name);
  const config = (await readJsonLenient(join(dir, 'scheduler_config.json'))) as Record<string, unknown>;
  const file = SafetensorsFile.open(join(dir, 'io.safetensors'));
  const tensors = new Map<string, Tensor>();
  const intTensors = new Map<string, number[]>();
  try {
    for (const n of file.names()) {
      const info = file.info(n);
      if (info.dtype === 'I64') {
        const v = file.read(n) as BigInt64Array;
        intTensors.set(
          n,
          Array.from(v, (x) => Number(x)),
        );
      } else {
        tensors.set(n, { shape: info.shape, data: file.readFloat32(n) });
      }
    }
  } finally {
    file.close();
  }
  return {
    dir,
    config,
    tensors,
    intNames: [...intTensors.keys()],
    get(n: string): Tensor {
      const t = tensors.get(n);
      if (t === undefined) throw new Error(`${dir}/io.safetensors: no float tensor "${n}"`);
      return t;
    },
    ints(n: string): number[] {
      const t = intTensors.get(n);
      if (t === undefined) throw new Error(`${dir}/io.safetensors: no int64 tensor "${n}"`);
      return t;
    },
  };
}

/** Slice i of a tensor's leading dimension. */
export function slice(t: Tensor, i: number): Float32Array {
  const per = t.data.length / (t.shape[0] as number);
  return t.data.subarray(i * per, (i + 1) * per);
}

export interface Closeness {
  ok: boolean;
  maxAbs: number;
  /** Largest |a − e| / (atol + rtol·|e|); ≤ 1 means within tolerance. */
  worstRatio: number;
}

/** numpy.allclose-style comparison |a − e| ≤ atol + rtol·|e|, with the measured maximum error. */
export function closeness(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
): Closeness {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let maxAbs = 0;
  let worstRatio = 0;
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i] as number;
    const d = Math.abs((actual[i] as number) - e);
    if (Number.isNaN(d)) return { ok: false, maxAbs: Infinity, worstRatio: Infinity };
    maxAbs = Math.max(maxAbs, d);
    const bound = atol + rtol * Math.abs(e);
    worstRatio = Math.max(worstRatio, d === 0 ? 0 : bound === 0 ? Infinity : d / bound);
  }
  return { ok: worstRatio <= 1, maxAbs, worstRatio };
}

/** Maximum absolute difference. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return closeness(a, b, 0, 0).maxAbs;
}

export const ATOL = 1e-5;
export const RTOL = 1e-5;

/** All `timesteps` / `timesteps_<n>` entries of a fixture: the step count is the tensor's length. */
export function timestepSchedules(fx: SchedulerFixture): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const name of fx.intNames) {
    const m = /^timesteps(?:_(\d+))?$/.exec(name);
    if (m === null) continue;
    const ts = fx.ints(name);
    if (m[1] !== undefined && Number(m[1]) !== ts.length) {
      throw new Error(`${name} has ${ts.length} entries`);
    }
    out.set(ts.length, ts);
  }
  return out;
}
