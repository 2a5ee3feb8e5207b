// LoRA on the shipped default model: PEFT and kohya files load onto the same layers, λ = 0 is the base
// output bit for bit, the merged folder matches the unmerged run within fp16 rounding, bad files are refused
// by name and leave the pipeline untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';
import { loadLoRAs } from '../../src/pipelines/lora.js';
import { saveLoRAFile } from '../../src/io/lora_file.js';
import type { AdapterModule } from '../../src/io/lora_file.js';
import { findLoRATargets, loraFactorShapes } from '../../src/nn/lora.js';
import type { Module } from '../../src/nn/module.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import type { TensorToWrite } from '../../src/io/safetensors.js';
import { Generator } from '../../src/engine/random.js';
import { DEFAULT_MODEL_DIR } from '../../src/cli/generate.js';
import { mergeLoRAs } from '../../src/cli/lora.js';
import { parseLoRASpec } from '../../src/io/lora_file.js';

const RUN = { prompt: 'a red circle moves left on a blue background', numFrames: 4, height: 64, width: 64 };
const OPTS = { ...RUN, numInferenceSteps: 2, seed: 1 };

async function frames(pipe: TextToVideoPipeline): Promise<Float32Array> {
  for await (const e of pipe.generate(OPTS)) if (e.kind === 'done') return e.framesFloat;
  throw new Error('no frames');
}

function randomAdapter(root: Module, component: AdapterModule['component'], targets: string[], seed: number) {
  const rng = new Generator(seed);
  const rank = 2;
  return [...findLoRATargets(root, targets)].map(([hostPath, host]): AdapterModule => {
    const { a, b } = loraFactorShapes(host.loraGeometry, rank);
    const draw = (shape: number[], std: number) => ({
      shape,
      data: rng.normal(shape.reduce((x, y) => x * y, 1)).map((v) => v * std),
    });
    return { component, hostPath, down: draw(a, 0.3), up: draw(b, 0.3) };
  });
}

/** The same modules in kohya's layout, α = r (so the scale equals PEFT's default). */
function writeKohya(path: string, modules: AdapterModule[]): void {
  const t = new Map<string, TensorToWrite>();
  for (const m of modules) {
    const stem = `lora_${m.component === 'unet' ? 'unet' : 'te'}_${m.hostPath.replaceAll('.', '_')}`;
    t.set(`${stem}.lora_down.weight`, { dtype: 'F32', shape: m.down.shape, data: m.down.data });
    t.set(`${stem}.lora_up.weight`, { dtype: 'F32', shape: m.up.shape, data: m.up.data });
    t.set(`${stem}.alpha`, { dtype: 'F32', shape: [], data: Float32Array.of(m.down.shape[0]!) });
  }
  writeSafetensors(path, t);
}

const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('LoRA files (PEFT, kohya) on the default model: scale 0, merge, layouts agree', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-lora-'));
  try {
    const base = await TextToVideoPipeline.fromPretrained(DEFAULT_MODEL_DIR);
    const expected = await frames(base);
    // Fresh pipelines for every variant (loading a LoRA changes the pipeline it is loaded onto).
    const load = () => TextToVideoPipeline.fromPretrained(DEFAULT_MODEL_DIR);
    const probe = await load();
    const modules = [
      ...randomAdapter(probe.components.unet, 'unet', ['to_q', 'to_v', 'ff.net.2'], 1),
      ...randomAdapter(probe.components.textEncoder.module, 'text_encoder', ['q_proj', 'fc2'], 2),
    ];
    const peft = join(dir, 'peft.safetensors');
    saveLoRAFile(peft, modules);
    const kohya = join(dir, 'kohya.safetensors');
    writeKohya(kohya, modules); // F32 here, F16 in the PEFT file: compare the two within fp16 rounding

    const zero = await load();
    loadLoRAs(zero, [{ path: peft, scale: 0 }]);
    assert.deepEqual(await frames(zero), expected, '--lora FILE:0 is the base output exactly');

    const unmerged = await load();
    loadLoRAs(unmerged, [{ path: peft, scale: 0.8 }]);
    const withLora = await frames(unmerged);
    const change = maxDiff(withLora, expected);
    assert.ok(change > 0.05, `the LoRA should change the video (max |Δ| = ${change})`);

    const viaKohya = await load();
    loadLoRAs(viaKohya, [{ path: kohya, scale: 0.8 }]);
    assert.ok(maxDiff(await frames(viaKohya), withLora) < 0.01, 'kohya and PEFT layouts give the same video');

    const merged = join(dir, 'merged');
    await mergeLoRAs(DEFAULT_MODEL_DIR, [parseLoRASpec(`${peft}:0.8`)], merged);
    const mergedFrames = await frames(await TextToVideoPipeline.fromPretrained(merged));
    const d = maxDiff(mergedFrames, withLora);
    assert.ok(d < 0.02, `merged (fp16 weights) vs unmerged: max |Δ| ${d} of the [0, 1] frames`);
    assert.ok(existsSync(join(merged, 'merged_loras.json')));
    await assert.rejects(mergeLoRAs(DEFAULT_MODEL_DIR, [parseLoRASpec(peft)], merged), /exists/);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('.')),
      [],
      'no temporary folder is left behind',
    );

    // Two adapters add up: the same file twice at 0.4 equals it once at 0.8.
    const twice = await load();
    loadLoRAs(twice, [
      { path: peft, scale: 0.4 },
      { path: peft, scale: 0.4 },
    ]);
    assert.ok(maxDiff(await frames(twice), withLora) < 1e-3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad LoRA files are refused by name and leave the pipeline unchanged', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-lora-bad-'));
  try {
    const pipe = await TextToVideoPipeline.fromPretrained(DEFAULT_MODEL_DIR);
    const good = randomAdapter(pipe.components.unet, 'unet', ['to_q'], 3);
    const write = (name: string, t: Record<string, TensorToWrite>) => {
      writeSafetensors(join(dir, name), t);
      return join(dir, name);
    };
    const f = (shape: number[]): TensorToWrite => ({
      dtype: 'F32',
      shape,
      data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
    });
    const host = good[0]!;
    const cases: [string, Record<string, TensorToWrite>, RegExp][] = [
      [
        'nomatch',
        {
          'unet.down_blocks.9.nothing.lora_A.weight': f([2, 4]),
          'unet.down_blocks.9.nothing.lora_B.weight': f([4, 2]),
        },
        /'down_blocks\.9\.nothing' matches no linear or conv layer of the UNet/,
      ],
      [
        'shape',
        {
          [`unet.${host.hostPath}.lora_A.weight`]: f([2, 3]),
          [`unet.${host.hostPath}.lora_B.weight`]: f([host.up.shape[0]!, 2]),
        },
        /do not fit layer/,
      ],
      ['lonely', { [`unet.${host.hostPath}.lora_A.weight`]: f([...host.down.shape]) }, /no up factor/],
      ['other', { 'unet.conv_in.weight': f([2, 2]) }, /is not a LoRA weight/],
      [
        'kohya-nomatch',
        {
          'lora_unet_mid_block_nothing.lora_down.weight': f([2, 4]),
          'lora_unet_mid_block_nothing.lora_up.weight': f([4, 2]),
          'lora_unet_mid_block_nothing.alpha': { dtype: 'F32', shape: [], data: Float32Array.of(2) },
        },
        /'lora_unet_mid_block_nothing' matches no linear or conv layer/,
      ],
      [
        'kohya-noalpha',
        {
          'lora_unet_mid_block_nothing.lora_down.weight': f([2, 4]),
          'lora_unet_mid_block_nothing.lora_up.weight': f([4, 2]),
        },
        /kohya module 'lora_unet_mid_block_nothing' has no '\.alpha'/,
      ],
    ];
    const before = pipe.components.unet.stateDict;
    const goodPath = join(dir, 'good.safetensors');
    saveLoRAFile(goodPath, good);
    for (const [name, tensors, message] of cases) {
      const path = write(`${name}.safetensors`, tensors);
      assert.throws(
        () =>
          loadLoRAs(pipe, [
            { path: goodPath, scale: 1 },
            { path, scale: 1 },
          ]),
        message,
        name,
      );
    }
    assert.equal(pipe.components.unet.stateDict, before, 'a refused load changes nothing');
    assert.equal(
      pipe.components.unet.getSubmodule(host.hostPath).namedParameters().size,
      1,
      'no branch was attached',
    );
    assert.deepEqual(parseLoRASpec('C:\\x\\a.safetensors'), { path: 'C:\\x\\a.safetensors', scale: 1 });
    assert.deepEqual(parseLoRASpec('a.safetensors:-0.5'), { path: 'a.safetensors', scale: -0.5 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the shipped models/default/lora/striped.safetensors loads strictly; at scale 0 it is the base', async () => {
  const file = join(DEFAULT_MODEL_DIR, 'lora', 'striped.safetensors');
  const pipe = await TextToVideoPipeline.fromPretrained(DEFAULT_MODEL_DIR);
  const base = await frames(pipe);
  const withIt = await TextToVideoPipeline.fromPretrained(DEFAULT_MODEL_DIR);
  assert.equal(loadLoRAs(withIt, [{ path: file, scale: 0 }]).length, 150);
  assert.deepEqual(await frames(withIt), base);
});
