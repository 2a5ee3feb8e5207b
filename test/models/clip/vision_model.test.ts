import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLIPVisionModel, ClipVisionEmbeddings } from '../../../src/models/clip/vision_model.js';
import { parseClipVisionConfig } from '../../../src/models/clip/config.js';
import { ModelLoadError } from '../../../src/io/model_folder.js';
import { loadSafetensors, writeSafetensors, type TensorToWrite } from '../../../src/io/safetensors.js';
import { trace } from '../../../src/engine/tensor.js';
import { interpret } from '../../../src/engine/interpret.js';
import { hostTensor, type HostTensor } from '../../../src/engine/runtime.js';
import { bindWeights, compileWithWeights } from '../../../src/nn/compile.js';
import {
  TINY_CLIP_CONFIG,
  assertClose,
  readGolden,
  tinyClipInputs,
  tinyClipStateDict,
  writeTinyClipFolder,
  writeTinyVisionFolder,
} from './tiny_clip.js';

const temps: string[] = [];
after(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kinema-clip-vision-'));
  temps.push(d);
  return d;
}

let visionDir: string | undefined;
function tinyVisionDir(): string {
  if (visionDir === undefined) {
    visionDir = tempDir();
    writeTinyVisionFolder(visionDir);
  }
  return visionDir;
}

test('the generated tiny CLIP weights are the ones the golden file was computed for', () => {
  const sha = writeTinyClipFolder(tempDir());
  assert.equal(
    sha,
    readGolden().weightsSha256,
    'tiny CLIP weights changed: regenerate test/fixtures/clip (make_golden.py)',
  );
});

test('CLIPVisionModelWithProjection matches the independent torch reference', async () => {
  const golden = readGolden();
  const model = await CLIPVisionModel.fromPretrained(tinyVisionDir());
  assert.equal(model.withProjection, true);
  const { pixels } = tinyClipInputs();
  assert.deepEqual(pixels, golden.get('pixel_values').data);
  const out = await model.encode(pixels, 3, { outputHiddenStates: true });
  assertClose('vision last_hidden_state', out.lastHiddenState, golden.get('vision_last_hidden_state'));
  assertClose('vision pooler_output', out.pooledOutput, golden.get('vision_pooler_output'));
  assertClose('image_embeds', out.imageEmbeds!, golden.get('image_embeds'));
  assert.equal(out.hiddenStates!.length, 3);
  assertClose('vision hidden_states.0', out.hiddenStates![0]!, golden.get('vision_hidden_states.0'));
  assertClose('vision hidden_states.1', out.hiddenStates![1]!, golden.get('vision_hidden_states.1'));
  assert.deepEqual(out.hiddenStates![2]!.data, out.lastHiddenState.data);
  // One image at a time gives the same rows as the batch.
  const single = await model.encode(pixels.subarray(3 * 32 * 32, 2 * 3 * 32 * 32), 1);
  const pooled = golden.get('vision_pooler_output');
  assertClose('vision pooler_output (image 1 alone)', single.pooledOutput, {
    data: pooled.data.slice(24, 48),
    shape: [1, 24],
  });
});

test('ONNX Runtime and the reference interpreter agree on the traced vision program', async () => {
  const model = await CLIPVisionModel.fromPretrained(tinyVisionDir());
  const { pixels } = tinyClipInputs();
  const input = hostTensor(pixels.slice(0, 2 * 3 * 32 * 32), [2, 3, 32, 32]);
  const program = trace(model.forwardFn(false), [{ name: 'pixel_values', shape: [2, 3, 32, 32] }]);
  const feeds: Record<string, HostTensor> = { pixel_values: input };
  for (const [name, data] of bindWeights(program, model.stateDict)) {
    const spec = program.inputs.find((i) => i.name === name)!;
    feeds[name] = hostTensor(data, spec.v.shape);
  }
  const reference = interpret(program, feeds);
  const onnx = await model.encode(input.data as Float32Array, 2);
  for (const [name, got] of [
    ['last_hidden_state', onnx.lastHiddenState],
    ['pooler_output', onnx.pooledOutput],
    ['image_embeds', onnx.imageEmbeds!],
  ] as const) {
    const ref = reference[name]!;
    assertClose(`ORT vs interpreter ${name}`, got, {
      data: Float32Array.from(ref.data as Float32Array),
      shape: [...ref.shape],
    });
  }
});

test('patch embedding of a constant image: class row and patch rows by hand', async () => {
  const config = parseClipVisionConfig(TINY_CLIP_CONFIG.vision_config);
  const embeddings = new ClipVisionEmbeddings(config);
  const { stateDict } = tinyClipStateDict();
  const sd = new Map<string, Float32Array>();
  for (const name of embeddings.namedParameters().keys())
    sd.set(name, stateDict.get(`vision_model.embeddings.${name}`)!);
  const c = 0.75;
  const fn = await compileWithWeights(
    (x) => embeddings.forward(x),
    [{ name: 'x', shape: [1, 3, 32, 32] }],
    sd,
  );
  const out = (await fn.exe.run({ x: hostTensor(new Float32Array(3 * 32 * 32).fill(c), [1, 3, 32, 32]) }))[
    'out0'
  ]!;
  assert.deepEqual([...out.shape], [1, 17, 24]);
  const w = sd.get('patch_embedding.weight')!; // [24, 3, 8, 8]
  const cls = sd.get('class_embedding')!;
  const pos = sd.get('position_embedding.weight')!;
  const got = out.data as Float32Array;
  let maxDiff = 0;
  for (let o = 0; o < 24; o++) {
    let wsum = 0;
    for (let i = 0; i < 3 * 64; i++) wsum += w[o * 192 + i]!;
    maxDiff = Math.max(maxDiff, Math.abs(got[o]! - (cls[o]! + pos[o]!)));
    for (let p = 1; p <= 16; p++)
      maxDiff = Math.max(maxDiff, Math.abs(got[p * 24 + o]! - (c * wsum + pos[p * 24 + o]!)));
  }
  console.log(`constant-image embeddings: max abs diff ${maxDiff.toExponential(3)}`);
  assert.ok(maxDiff < 1e-5);
});

test('vision loading is strict; wrong pixel sizes are rejected', async () => {
  const dir = tinyVisionDir();
  const weights = loadSafetensors(join(dir, 'model.safetensors'));
  const without = tempDir();
  writeFileSync(join(without, 'config.json'), JSON.stringify(TINY_CLIP_CONFIG.vision_config));
  const t = new Map<string, TensorToWrite>(
    [...weights].filter(([k]) => k !== 'vision_model.embeddings.class_embedding'),
  );
  writeSafetensors(join(without, 'model.safetensors'), t);
  await assert.rejects(
    CLIPVisionModel.fromPretrained(without),
    (e: unknown) =>
      e instanceof ModelLoadError &&
      /missing keys: vision_model\.embeddings\.class_embedding/.test(e.message) &&
      /unexpected keys: visual_projection\.weight/.test(e.message),
  );
  const badPatch = tempDir();
  writeFileSync(
    join(badPatch, 'config.json'),
    JSON.stringify({ ...TINY_CLIP_CONFIG.vision_config, image_size: 30 }),
  );
  await assert.rejects(
    CLIPVisionModel.fromPretrained(badPatch),
    /image_size 30 is not a multiple of patch_size 8/,
  );
  const model = await CLIPVisionModel.fromPretrained(dir);
  await assert.rejects(
    model.encode(new Float32Array(3 * 224 * 224), 1),
    /do not hold 1 images of \[3, 32, 32\]/,
  );
  await assert.rejects(model.encode(new Float32Array(0), 0), /image count must be ≥ 1/);
});
