// Helpers for the VAE tests: fixture location, tensor loading, error measurement, temp folders.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { HostTensor } from '../../../src/engine/runtime.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import { SafetensorsFile } from '../../../src/io/safetensors.js';
import { readConfig } from '../../../src/io/model_folder.js';

export const PARITY_DIR =
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity');
export const VAE_DIR = join(PARITY_DIR, 'vae');

export function vaeConfigJson(): Record<string, unknown> {
  return readConfig(VAE_DIR);
}

/** Every tensor of a safetensors file as a float32 HostTensor. */
export function readTensors(path: string): Map<string, HostTensor> {
  const file = SafetensorsFile.open(path);
  try {
    return new Map(file.names().map((n) => [n, hostTensor(file.readFloat32(n), file.info(n).shape)]));
  } finally {
    file.close();
  }
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return Infinity;
    m = Math.max(m, d);
  }
  return m;
}

/** Max |actual − expected| relative to max |expected|, after checking the shapes agree. */
export function relativeError(actual: HostTensor, expected: HostTensor): number {
  if (actual.shape.join() !== expected.shape.join()) {
    throw new Error(`shape [${actual.shape}] != expected [${expected.shape}]`);
  }
  const a = actual.data as Float32Array;
  const e = expected.data as Float32Array;
  return maxAbsDiff(a, e) / maxAbs(e);
}

/** Runs `fn` with a fresh temp folder that is removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-vae-test-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
