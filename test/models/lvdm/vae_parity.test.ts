// VideoCrafter's first stage (LDM Encoder/Decoder + quant convs, scripts/fixtures/lvdm_parity.py) loaded by its
// `first_stage_model.*` keys onto Kinema's AutoencoderKL, encoder mean and decoder output matched in fp32.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { TorchCheckpoint, toPlain } from '../../../src/io/torch_ckpt.js';
import { CheckpointKeyMap } from '../../../src/io/checkpoint_keys.js';
import { hostTensor, type HostTensor } from '../../../src/engine/runtime.js';
import { PickleDict } from '../../../src/io/torch_pickle.js';
import { ldmVaeKey, loadLdmVae } from '../../../src/models/lvdm/vae.js';
import { maxRelErr } from './compare.js';

const FIXTURE = resolve('test/fixtures/lvdm/vae.pt');

test('LDM first-stage keys map onto diffusers names (decoder levels reversed, nin_shortcut, attn_1)', () => {
  assert.equal(
    ldmVaeKey('decoder.up.0.block.2.nin_shortcut.weight', 4),
    'decoder.up_blocks.3.resnets.2.conv_shortcut.weight',
  );
  assert.equal(ldmVaeKey('decoder.up.3.upsample.conv.bias', 4), 'decoder.up_blocks.0.upsamplers.0.conv.bias');
  assert.equal(
    ldmVaeKey('encoder.mid.attn_1.proj_out.weight', 4),
    'encoder.mid_block.attentions.0.to_out.0.weight',
  );
  assert.equal(ldmVaeKey('encoder.mid.block_2.norm1.bias', 4), 'encoder.mid_block.resnets.1.norm1.bias');
  assert.equal(ldmVaeKey('loss.logvar', 4), undefined);
});

test('LDM first stage on AutoencoderKL matches VideoCrafter ≤ 1e-4 (encoder mean, decoder)', async (t) => {
  const ckpt = TorchCheckpoint.open(FIXTURE);
  const dd = toPlain((ckpt.root as PickleDict).map.get('config')) as Record<string, unknown>;
  const keys = new CheckpointKeyMap(ckpt);
  const vae = loadLdmVae(keys, dd);
  keys.assertAllUsed('an LDM first stage');
  ckpt.close();
  const ioc = TorchCheckpoint.open(FIXTURE, { stateDictKey: 'io' });
  const io: Record<string, HostTensor> = Object.fromEntries(
    ioc.keys().map((k) => [k, hostTensor(ioc.readFloat32(k), ioc.info(k).shape)]),
  );
  ioc.close();
  const posterior = await vae.encode(io['images']!);
  const enc = maxRelErr(posterior.mean.data as Float32Array, io['mean']!.data as Float32Array);
  const decoded = await vae.decode(io['z']!);
  const dec = maxRelErr(decoded.data as Float32Array, io['decoded']!.data as Float32Array);
  t.diagnostic(`encoder mean rel ${enc.rel.toExponential(2)}, decoder rel ${dec.rel.toExponential(2)}`);
  assert.ok(enc.rel <= 1e-4 && dec.rel <= 1e-4, `encoder ${enc.rel}, decoder ${dec.rel}`);
});
