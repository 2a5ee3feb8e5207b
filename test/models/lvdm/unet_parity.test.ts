// LVDM UNet vs VideoCrafter's own UNetModel (scripts/fixtures/lvdm_parity.py): a tiny random model with every
// switch of the VideoCrafter1 releases (relative positions, temporal convs, image cross-attention, init_attn,
// fps), loaded from a torch.save file by the release's key names, output matched in fp32; and the image-to-video
// release's own switch set with 77 text + 16 image tokens (scripts/fixtures/lvdm_i2v.py), at the release's image
// scale 1.0 and at 0.5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { TorchCheckpoint, toPlain } from '../../../src/io/torch_ckpt.js';
import { CheckpointKeyMap } from '../../../src/io/checkpoint_keys.js';
import { hostTensor, type HostTensor } from '../../../src/engine/runtime.js';
import { LvdmUNet } from '../../../src/models/lvdm/unet.js';
import { PickleDict } from '../../../src/io/torch_pickle.js';
import { maxRelErr } from './compare.js';

function io(fixture: string): Record<string, HostTensor> {
  const ckpt = TorchCheckpoint.open(fixture, { stateDictKey: 'io' });
  try {
    return Object.fromEntries(
      ckpt.keys().map((k) => [k, hostTensor(ckpt.readFloat32(k), ckpt.info(k).shape)]),
    );
  } finally {
    ckpt.close();
  }
}

const FIXTURES = [
  {
    file: 'unet.pt',
    what: 'i2v switches: temopral_conv, relative positions, image attention, fps',
    keys: [
      'input_blocks.1.0.temopral_conv.conv1.0.weight',
      'input_blocks.1.1.transformer_blocks.0.attn2.to_k_ip.weight',
    ],
  },
  {
    file: 'unet_i2v.pt',
    what: 'the i2v release switch set: temopral_conv, no relative positions, image attention on 16 tokens, fps',
    keys: [
      'input_blocks.1.0.temopral_conv.conv4.3.weight',
      'middle_block.1.transformer_blocks.0.attn2.to_v_ip.weight',
      'init_attn.0.transformer_blocks.0.attn1.to_q.weight',
    ],
  },
  {
    file: 'unet_t2v.pt',
    what: 't2v switches: relative positions, no temporal convs, no image attention, no fps',
    keys: ['input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight'],
  },
];

for (const f of FIXTURES) {
  test(`LVDM UNet with the release key names (${f.what}) matches VideoCrafter ≤ 1e-4`, async (t) => {
    const fixture = resolve('test/fixtures/lvdm', f.file);
    const ckpt = TorchCheckpoint.open(fixture);
    const root = ckpt.root as PickleDict;
    const config = toPlain(root.map.get('config')) as Record<string, unknown>;
    const keys = new CheckpointKeyMap(ckpt);
    const model = LvdmUNet.fromConfig(config);
    const { stateDict, shapes } = keys.take('model.diffusion_model.');
    keys.assertAllUsed('an LVDM UNet');
    model.loadWeights(stateDict, shapes);
    ckpt.close();
    for (const k of f.keys) assert.ok(stateDict.has(k), k);
    const d = io(fixture);
    const out = await model.run(
      d['x']!,
      d['timesteps']!,
      d['context']!,
      model.config.fpsCond ? { fps: d['fps']! } : {},
    );
    const err = maxRelErr(out.data as Float32Array, d['out']!.data as Float32Array);
    t.diagnostic(`max abs ${err.abs.toExponential(2)}, relative to max |out| ${err.rel.toExponential(2)}`);
    assert.ok(err.rel <= 1e-4, `relative error ${err.rel}`);
  });
}

test('LVDM UNet image cross-attention: context split at 77, image scale as image_cross_attention_scale', async (t) => {
  const fixture = resolve('test/fixtures/lvdm/unet_i2v.pt');
  const ckpt = TorchCheckpoint.open(fixture);
  const config = toPlain((ckpt.root as PickleDict).map.get('config')) as Record<string, unknown>;
  const model = LvdmUNet.fromConfig(config);
  const { stateDict, shapes } = new CheckpointKeyMap(ckpt).take('model.diffusion_model.');
  model.loadWeights(stateDict, shapes);
  ckpt.close();
  assert.equal(model.config.useImageAttention, true);
  assert.equal(model.config.useRelativePosition, false);
  const d = io(fixture);
  assert.deepEqual(d['context']!.shape, [2, 77 + 16, 24]);
  model.setImageScale(0.5);
  const half = await model.run(d['x']!, d['timesteps']!, d['context']!, { fps: d['fps']! });
  const err = maxRelErr(half.data as Float32Array, d['out_scale_half']!.data as Float32Array);
  t.diagnostic(`scale 0.5: max abs ${err.abs.toExponential(2)}, relative ${err.rel.toExponential(2)}`);
  assert.ok(err.rel <= 1e-4, `relative error ${err.rel}`);
  // the scale matters (the image tokens reach the output) …
  const full = maxRelErr(d['out']!.data as Float32Array, d['out_scale_half']!.data as Float32Array);
  assert.ok(full.rel > 1e-3, `scale 1 vs 0.5 differ by ${full.rel}`);
  // … and 77 text tokens alone are refused by name
  model.setImageScale(1);
  const textOnly = hostTensor((d['context']!.data as Float32Array).slice(0, 2 * 77 * 24), [2, 77, 24]);
  await assert.rejects(
    model.run(d['x']!, d['timesteps']!, textOnly, { fps: d['fps']! }),
    (e: Error & { code?: string }) =>
      e.code === 'LVDM_BAD_INPUT' && /77 text tokens \+ image tokens/.test(e.message),
  );
});
