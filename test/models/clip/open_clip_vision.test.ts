// OpenCLIP's ViT visual tower (scripts/fixtures/open_clip_vision.py: open_clip 2.22.0's own VisionTransformer,
// stored under StreamingT2V's `image_encoder.model.visual.*` keys in fp16) loaded onto Kinema's
// CLIPVisionModelWithProjection: `visual(img)` (StreamingT2V's APM embedding) and the last block's tokens before
// ln_post (VideoCrafter I2V's 257) matched in fp32 within 1e-4 absolute; every key accounted for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { TorchCheckpoint } from '../../../src/io/torch_ckpt.js';
import { CheckpointKeyMap } from '../../../src/io/checkpoint_keys.js';
import type { TensorReader } from '../../../src/io/checkpoint_keys.js';
import {
  defaultOpenClipVisionHeads,
  encodeOpenClipVision,
  loadOpenClipVision,
  openClipVisionTokens,
} from '../../../src/models/clip/open_clip_vision.js';
import { maxRelErr } from '../lvdm/compare.js';

const FIXTURE = resolve('test/fixtures/clip/open_clip_vision.pt');
const PREFIX = 'image_encoder.model.visual.';
const TOL = 1e-4;

function io(): Record<string, Float32Array> {
  const c = TorchCheckpoint.open(FIXTURE, { stateDictKey: 'io' });
  try {
    return Object.fromEntries(c.keys().map((k) => [k, c.readFloat32(k)]));
  } finally {
    c.close();
  }
}

/** The fixture's tensors under other names: `rename` maps a listed key to the fixture key it reads. */
function wrapped(ckpt: TorchCheckpoint, keys: string[], rename: (k: string) => string): TensorReader {
  return {
    path: 'x.ckpt',
    keys: () => keys,
    info: (k) => ckpt.info(rename(k)),
    readFloat32: (k) => ckpt.readFloat32(rename(k)),
  };
}

const mismatch =
  (pattern: RegExp) =>
  (e: Error & { code?: string }): boolean =>
    e.code === 'CKPT_KEY_MISMATCH' && pattern.test(e.message);

test('OpenCLIP ViT tower on CLIPVisionModel matches open_clip ≤ 1e-4 (visual(img) and pre-ln_post tokens)', async (t) => {
  const ref = io();
  const ckpt = TorchCheckpoint.open(FIXTURE);
  const keys = new CheckpointKeyMap(ckpt);
  const model = loadOpenClipVision(keys, { prefix: PREFIX, heads: 2, patchSize: 8, imageSize: 32 });
  keys.assertAllUsed('an OpenCLIP visual tower');
  ckpt.close();
  const c = model.config;
  assert.deepEqual(
    [c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.intermediateSize, c.patchSize, c.imageSize],
    [32, 2, 2, 128, 8, 32],
  );
  assert.deepEqual([c.projectionDim, c.numChannels, c.hiddenAct, c.layerNormEps], [12, 3, 'gelu', 1e-5]);
  assert.equal(model.withProjection, true);

  const out = await encodeOpenClipVision(model, ref['pixels']!, 2);
  assert.deepEqual(out.embeds.shape, [2, 12]);
  assert.deepEqual(out.tokens.shape, [2, 17, 32]);
  for (const [name, got, want] of [
    ['pooled_projected', out.embeds.data, ref['pooled_projected']!],
    ['tokens', out.tokens.data, ref['tokens']!],
  ] as const) {
    const e = maxRelErr(got as Float32Array, want);
    t.diagnostic(`${name}: max |Δ| ${e.abs.toExponential(2)}, relative ${e.rel.toExponential(2)}`);
    assert.ok(e.abs <= TOL, `${name}: max |Δ| ${e.abs}`);
  }

  // the tokens are transformers' hidden_states[-1] (= last_hidden_state, before post_layernorm)
  const full = await model.encode(ref['pixels']!, 2, { outputHiddenStates: true });
  assert.equal(full.hiddenStates!.length, 3);
  assert.deepEqual(full.hiddenStates![2]!.data, out.tokens.data);
  assert.deepEqual((await openClipVisionTokens(model, ref['pixels']!, 2)).data, out.tokens.data);
});

test('VideoCrafter’s prefix loads the same tower and leaves keys outside it to others', async () => {
  const ref = io();
  const ckpt = TorchCheckpoint.open(FIXTURE);
  try {
    const vc = ckpt.keys().map((k) => k.replace('image_encoder.', 'embedder.'));
    const reader = wrapped(ckpt, [...vc, 'embedder.model.ln_final.weight'], (k) =>
      k.replace('embedder.', 'image_encoder.').replace('model.ln_final', 'model.visual.ln_post'),
    );
    const keys = new CheckpointKeyMap(reader);
    const model = loadOpenClipVision(keys, { prefix: 'embedder.model.visual.', heads: 2 });
    assert.deepEqual(keys.unused(), ['embedder.model.ln_final.weight']);
    const tokens = await openClipVisionTokens(model, ref['pixels']!, 2);
    assert.ok(maxRelErr(tokens.data as Float32Array, ref['tokens']!).abs <= TOL);
  } finally {
    ckpt.close();
  }
});

test('a key that is not part of an OpenCLIP ViT tower, or a missing one, is a named CKPT_KEY_MISMATCH', () => {
  const ckpt = TorchCheckpoint.open(FIXTURE);
  try {
    const all = ckpt.keys();
    const strip = (k: string): string => k.replace(/\.(extra|ls_1\.gamma)$/, '.ln_1.bias');
    const load = (keys: string[], opts: { patchSize?: number; imageSize?: number } = {}): unknown =>
      loadOpenClipVision(new CheckpointKeyMap(wrapped(ckpt, keys, strip)), {
        prefix: PREFIX,
        heads: 2,
        ...opts,
      });

    assert.throws(
      () => load([...all, `${PREFIX}transformer.resblocks.1.extra`]),
      mismatch(/image_encoder\.model\.visual\.transformer\.resblocks\.1\.extra/),
    );
    assert.throws(
      () => load([...all, `${PREFIX}transformer.resblocks.0.ls_1.gamma`]),
      mismatch(/resblocks\.0\.ls_1\.gamma \(layer scale/),
    );
    assert.throws(
      () => load(all.filter((k) => !k.endsWith('ln_post.bias'))),
      mismatch(/lacks image_encoder\.model\.visual\.ln_post\.bias/),
    );
    assert.throws(
      () => load(all.filter((k) => !k.endsWith('.proj'))),
      mismatch(/lacks image_encoder\.model\.visual\.proj\b/),
    );
    assert.throws(
      () => load(all.filter((k) => !k.includes('resblocks.0.'))),
      mismatch(/lacks image_encoder\.model\.visual\.transformer\.resblocks\.0\.ln_1\.weight/),
    );
    assert.throws(() => load(all, { patchSize: 14 }), mismatch(/patch size 8, expected 14/));
    assert.throws(() => load(all, { imageSize: 224 }), mismatch(/32px images .* expected 224/));
    assert.throws(
      () => load(all.map((k) => k.replace('image_encoder.', 'other.'))),
      mismatch(/no tensors under "image_encoder\.model\.visual\."/),
    );
  } finally {
    ckpt.close();
  }
});

test('the head count, which the weights do not show, matters: 1 head instead of 2 misses the reference', async () => {
  const ref = io();
  const ckpt = TorchCheckpoint.open(FIXTURE);
  const model = loadOpenClipVision(new CheckpointKeyMap(ckpt), { prefix: PREFIX }); // width 32 → 1 head
  ckpt.close();
  assert.equal(model.config.numAttentionHeads, 1);
  const tokens = await openClipVisionTokens(model, ref['pixels']!, 2);
  assert.ok(maxRelErr(tokens.data as Float32Array, ref['tokens']!).abs > 1e-2);
});

test('default heads follow open_clip’s model configs (ViT-H/14: 1280 wide, head_width 80 → 16)', () => {
  assert.equal(defaultOpenClipVisionHeads(1280), 16);
  assert.equal(defaultOpenClipVisionHeads(1664), 16);
  assert.equal(defaultOpenClipVisionHeads(1024), 16);
  assert.equal(defaultOpenClipVisionHeads(768), 12);
});
