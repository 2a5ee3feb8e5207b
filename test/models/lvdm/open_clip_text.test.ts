// VideoCrafter's OpenCLIP text tower (scripts/fixtures/open_clip_text.py: open_clip 2.22.0's own modules, read as
// FrozenOpenCLIPEmbedder reads them) loaded by its `cond_stage_model.model.*` keys onto Kinema's CLIPTextModel,
// the penultimate and last layers' states matched in fp32; every key of the file accounted for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { TorchCheckpoint } from '../../../src/io/torch_ckpt.js';
import { CheckpointKeyMap } from '../../../src/io/checkpoint_keys.js';
import type { TensorReader } from '../../../src/io/checkpoint_keys.js';
import { loadOpenClipText } from '../../../src/models/lvdm/open_clip_text.js';
import { maxRelErr } from './compare.js';

const FIXTURE = resolve('test/fixtures/lvdm/open_clip_text.pt');

function io(): Record<string, Float32Array> {
  const c = TorchCheckpoint.open(FIXTURE, { stateDictKey: 'io' });
  try {
    return Object.fromEntries(c.keys().map((k) => [k, c.readFloat32(k)]));
  } finally {
    c.close();
  }
}

test('OpenCLIP text tower on CLIPTextModel matches VideoCrafter ≤ 1e-4 (penultimate and last layer)', async (t) => {
  const ref = io();
  const ids = Array.from({ length: 2 }, (_, b) =>
    Array.from(ref['input_ids']!.subarray(b * 77, (b + 1) * 77), (v) => Math.round(v)),
  );
  for (const layer of ['penultimate', 'last'] as const) {
    const ckpt = TorchCheckpoint.open(FIXTURE);
    const keys = new CheckpointKeyMap(ckpt);
    const text = loadOpenClipText(keys, { layer, heads: 2 });
    keys.assertAllUsed('an OpenCLIP text tower');
    ckpt.close();
    assert.equal(text.config.numHiddenLayers, layer === 'penultimate' ? 2 : 3);
    assert.equal(text.config.hiddenAct, 'gelu');
    const out = (await text.encode(ids)).lastHiddenState.data as Float32Array;
    const e = maxRelErr(out, ref[layer]!);
    t.diagnostic(`${layer}: max |Δ| ${e.abs.toExponential(2)}, relative ${e.rel.toExponential(2)}`);
    assert.ok(e.rel <= 1e-4, `${layer}: relative error ${e.rel}`);
  }
});

test('a key that is not part of an OpenCLIP text tower, or a missing one, is a named error', () => {
  const ckpt = TorchCheckpoint.open(FIXTURE);
  try {
    const wrap = (keys: string[]): TensorReader => ({
      path: 'x.ckpt',
      keys: () => keys,
      info: (k) => ckpt.info(k.replace('.extra', '')),
      readFloat32: (k) => ckpt.readFloat32(k.replace('.extra', '')),
    });
    const all = ckpt.keys();
    const extra = wrap([...all, 'cond_stage_model.model.transformer.resblocks.0.attn.extra']);
    assert.throws(
      () => loadOpenClipText(new CheckpointKeyMap(extra), { heads: 2 }),
      (e: Error & { code?: string }) =>
        e.code === 'CKPT_KEY_MISMATCH' && /resblocks\.0\.attn\.extra/.test(e.message),
    );
    const noLn = wrap(all.filter((k) => !k.endsWith('ln_final.bias')));
    assert.throws(() => loadOpenClipText(new CheckpointKeyMap(noLn), { heads: 2 }), /final_layer_norm\.bias/);
    const none = wrap(all.map((k) => k.replace('cond_stage_model.', 'other.')));
    assert.throws(() => loadOpenClipText(new CheckpointKeyMap(none)), /no OpenCLIP text blocks/);
  } finally {
    ckpt.close();
  }
});
