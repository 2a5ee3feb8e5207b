// Helpers for the UNet3D tests: fixture location, tensor loading and the max-abs-diff tolerance check.
import { resolve, join } from 'node:path';
import { SafetensorsFile } from '../../../src/io/safetensors.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import type { HostTensor } from '../../../src/engine/runtime.js';

export const PARITY_DIR =
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity');
export const UNET_DIR = join(PARITY_DIR, 'unet3d');

/** Every tensor of unet3d/io.safetensors as a HostTensor (float32, or int64 for timesteps). */
export function loadUNetIO(): Map<string, HostTensor> {
  const file = SafetensorsFile.open(join(UNET_DIR, 'io.safetensors'));
  try {
    const out = new Map<string, HostTensor>();
    for (const name of file.names()) {
      const info = file.info(name);
      const data = info.dtype === 'I64' ? (file.read(name) as BigInt64Array) : file.readFloat32(name);
      out.set(name, hostTensor(data, info.shape));
    }
    return out;
  } finally {
    file.close();
  }
}

export function get(io: Map<string, HostTensor>, name: string): HostTensor {
  const t = io.get(name);
  if (!t) throw new Error(`io.safetensors has no tensor '${name}'`);
  return t;
}

export interface Diff {
  maxAbs: number;
  maxRef: number;
  /** maxAbs / maxRef: the brief's criterion is ≤ 1e-4 for float32. */
  rel: number;
}

export function compare(actual: HostTensor, expected: HostTensor): Diff {
  if (actual.shape.join() !== expected.shape.join()) {
    throw new Error(`shape mismatch: got [${actual.shape}], expected [${expected.shape}]`);
  }
  const a = actual.data as Float32Array;
  const e = expected.data as Float32Array;
  let maxAbs = 0;
  let maxRef = 0;
  for (let i = 0; i < e.length; i++) {
    const d = Math.abs(a[i]! - e[i]!);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
    maxRef = Math.max(maxRef, Math.abs(e[i]!));
  }
  return { maxAbs, maxRef, rel: maxAbs / maxRef };
}

export function fmt(name: string, d: Diff): string {
  return `${name}: max |diff| ${d.maxAbs.toExponential(2)}, max |ref| ${d.maxRef.toFixed(3)}, ratio ${d.rel.toExponential(2)}`;
}
