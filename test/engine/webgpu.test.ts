// The `webgpu` execution provider (bundled in onnxruntime-node on linux-x64) against the CPU provider: a
// gradient program (conv, group norm, attention, GELU, resize) and one classifier-free-guided step of the
// shipped default UNet must agree. On Linux the provider needs a Vulkan driver; `.ci/run` installs Mesa's
// lavapipe (a CPU Vulkan driver), so the GPU code path runs even without a GPU. Without any adapter the tests
// are skipped with that reason (and the error a user sees is checked to name the problem).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as op from '../../src/engine/ops.js';
import { trace } from '../../src/engine/tensor.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { valueAndGrad } from '../../src/engine/autodiff.js';
import { compile, hostTensor } from '../../src/engine/runtime.js';
import type { HostTensor } from '../../src/engine/runtime.js';
import { Generator } from '../../src/engine/random.js';
import { TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';
import { DEFAULT_MODEL_DIR } from '../../src/training/stages/unet.js';

process.env['XDG_RUNTIME_DIR'] ??= '/tmp';

/** null when a WebGPU adapter is available, else why not. */
async function webgpuUnavailable(): Promise<string | null> {
  const p = trace((x) => op.add(x, 1), [{ name: 'x', shape: [2] }]);
  try {
    await (await compile(p, { ep: 'webgpu' })).run({ x: hostTensor(Float32Array.of(1, 2), [2]) });
    return null;
  } catch (e) {
    // Any failure to start the provider (no Vulkan loader, no driver, no adapter) skips, naming the reason.
    return `WebGPU provider unavailable here: ${(e as Error).message.split('\n')[0]}`;
  }
}

const unavailable = await webgpuUnavailable();
const skip = unavailable ?? false;

/** max |a − b| / max |b| over every output. */
function relativeError(a: Record<string, HostTensor>, b: Record<string, HostTensor>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ref] of Object.entries(b)) {
    const x = a[name]!.data as Float32Array;
    const y = ref.data as Float32Array;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < y.length; i++) {
      diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
      scale = Math.max(scale, Math.abs(y[i]!));
    }
    out[name] = diff / scale;
  }
  return out;
}

test(
  'webgpu: a gradient program (conv, group norm, attention, GELU, resize) matches the CPU provider',
  { skip },
  async () => {
    const specs = [
      { name: 'x', shape: [2, 8, 8, 8] },
      { name: 'w', shape: [8, 8, 3, 3] },
      { name: 'q', shape: [2, 16, 8] },
    ];
    const program = valueAndGrad(
      (x: Tensor, w: Tensor, q: Tensor) => {
        let h = op.conv(x, w, { pads: [1, 1, 1, 1] });
        h = op.silu(op.groupNormCore(h, 4, 1e-5));
        h = op.resize(h, [16, 16], 'nearest');
        const tokens = op.transpose(op.reshape(h, [2, 8, 256]), [0, 2, 1]);
        const k = op.slice(tokens, [0], [16], [1]);
        const v = op.slice(tokens, [16], [32], [1]);
        const a = op.multiHeadAttention(q, k, v, 2);
        return op.mean(op.square(op.gelu(a)), [0, 1, 2]);
      },
      specs,
      { wrt: ['x', 'w', 'q'] },
    );
    const g = new Generator(3);
    const feeds = Object.fromEntries(
      specs.map((s) => [s.name, hostTensor(g.normal(s.shape.reduce((p, d) => p * d, 1)), s.shape)]),
    );
    const gpu = await (await compile(program, { ep: 'webgpu' })).run(feeds);
    const cpu = await (await compile(program)).run(feeds);
    for (const [name, e] of Object.entries(relativeError(gpu, cpu)))
      assert.ok(e < 1e-4, `${name}: relative error ${e}`);
  },
);

test('webgpu: one guided step of the default UNet matches the CPU provider', { skip }, async () => {
  const latents = hostTensor(new Generator(1).normal(4 * 2 * 16 * 16), [1, 4, 2, 16, 16]);
  const run = async (ep: 'cpu' | 'webgpu'): Promise<Record<string, HostTensor>> => {
    const pipe = await TextToVideoPipeline.fromPretrained(DEFAULT_MODEL_DIR, { ep });
    let first: HostTensor | undefined;
    for await (const e of pipe.generate({
      prompt: 'a red circle moves left on a blue background',
      latents,
      numInferenceSteps: 2,
    })) {
      if (e.kind === 'step' && e.index === 0) first = e.latents;
      if (e.kind === 'step' && e.index === 0) break;
    }
    return { latents: first! };
  };
  const gpu = await run('webgpu');
  const cpu = await run('cpu');
  const e = relativeError(gpu, cpu)['latents']!;
  assert.ok(e < 1e-4, `latents after one step: relative error ${e}`);
});
