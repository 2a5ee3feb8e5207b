// Child process for the SIGKILL tests: writes `dest` with one writer again and again (version 1, 2, …, each
// replacing the last) until it is killed. Prints "writing" once the first write has begun.
import { writeVideo } from '../../src/io/video/index.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { exportComponent } from '../../src/training/export.js';
import { Linear } from '../../src/nn/layers.js';

export const FRAMES = 24;
export const SIDE = 64;
export const TENSOR_LEN = 4_000_000; // 16 MB of float32: long enough to be killed mid-write

const [kind, dest] = process.argv.slice(2) as [string, string];

async function writeOnce(version: number): Promise<void> {
  if (kind === 'mp4' || kind === 'png') {
    const frames = Array.from({ length: FRAMES }, () => new Uint8Array(SIDE * SIDE * 3).fill(version * 10));
    await writeVideo(dest, frames, { width: SIDE, height: SIDE, fps: 8, format: kind });
  } else if (kind === 'safetensors') {
    writeSafetensors(dest, {
      x: { dtype: 'F32', shape: [TENSOR_LEN], data: new Float32Array(TENSOR_LEN).fill(version) },
    });
  } else if (kind === 'export') {
    const module = new Linear(1000, 1000);
    const stateDict = new Map([
      ['weight', new Float32Array(1000 * 1000).fill(version)],
      ['bias', new Float32Array(1000).fill(version)],
    ]);
    exportComponent(dest, {
      config: { version },
      stateDict,
      module,
      weightsBasename: 'diffusion_pytorch_model',
    });
  } else {
    throw new Error(`unknown writer ${kind}`);
  }
}

const t0 = performance.now();
for (let version = 1; ; version++) {
  const p = writeOnce(version);
  if (version === 1) process.stdout.write('writing\n');
  await p;
  if (version === 1) process.stdout.write(`first write took ${(performance.now() - t0).toFixed(0)} ms\n`);
}
