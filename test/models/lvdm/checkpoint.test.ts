// A whole VideoCrafter LatentDiffusion checkpoint (scripts/fixtures/lvdm_whole.py: the tiny UNet, first stage and
// OpenCLIP fixtures under their release prefixes, the DDPM buffers, EMA entries; Lightning-style) with its
// inference YAML: every part loads strictly and equals the part loaded alone; a schedule that differs, a key
// no part takes, or a broken YAML is refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TorchCheckpoint } from '../../../src/io/torch_ckpt.js';
import type { TensorReader } from '../../../src/io/checkpoint_keys.js';
import {
  ldmScheduleBuffers,
  loadLvdmCheckpoint,
  readLvdmConfigFile,
} from '../../../src/models/lvdm/checkpoint.js';

const CKPT = resolve('test/fixtures/lvdm/whole.ckpt');
const YAML = resolve('test/fixtures/lvdm/whole.yaml');

/** The checkpoint as a reader with some keys replaced, added or dropped. */
function edited(
  ckpt: TorchCheckpoint,
  edit: { drop?: string[]; replace?: Record<string, Float32Array>; add?: string[] },
): TensorReader {
  const keys = [...ckpt.keys().filter((k) => !edit.drop?.includes(k)), ...(edit.add ?? [])];
  return {
    path: 'edited.ckpt',
    keys: () => keys,
    info: (k) => (edit.add?.includes(k) ? { shape: [1] } : ckpt.info(k)),
    readFloat32: (k) =>
      edit.replace?.[k] ?? (edit.add?.includes(k) ? new Float32Array(1) : ckpt.readFloat32(k)),
  };
}

test('a whole LatentDiffusion checkpoint loads strictly: UNet, first stage, OpenCLIP text, schedule checked', async () => {
  const settings = readLvdmConfigFile(YAML);
  assert.equal(settings.textLayer, 'penultimate');
  assert.equal(settings.parameterization, 'eps');
  const ckpt = TorchCheckpoint.open(CKPT);
  try {
    const loaded = loadLvdmCheckpoint(ckpt, settings, { textHeads: 2 });
    assert.equal(loaded.ignored, 2, 'the two model_ema entries');
    assert.ok(
      loaded.checkedBuffers.includes('betas') && loaded.checkedBuffers.includes('posterior_mean_coef2'),
    );
    assert.equal(loaded.checkedBuffers.length, 13, '12 schedule buffers + scale_factor');
    assert.equal(loaded.textEncoder!.config.numHiddenLayers, 2);
    assert.equal(loaded.vae.config.scalingFactor, 0.18215);
    // The parts are the fixtures' own weights.
    const unetAlone = TorchCheckpoint.open(resolve('test/fixtures/lvdm/unet_t2v.pt'));
    const key = 'input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight';
    assert.deepEqual(loaded.unet.stateDict.get(key), unetAlone.readFloat32(`model.diffusion_model.${key}`));
    unetAlone.close();
    // The betas LDM's "linear" schedule gives (√-spaced) are what the file holds.
    const betas = ldmScheduleBuffers(settings).get('betas')!;
    assert.ok(Math.abs(betas[999]! - 0.012) < 1e-12 && Math.abs(betas[0]! - 0.00085) < 1e-12);

    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        return `${(e as { code: string }).code}: ${(e as Error).message}`;
      }
      return 'no error';
    };
    const other = ckpt.readFloat32('alphas_cumprod').map((v, i) => (i === 500 ? v * 0.99 : v));
    assert.match(
      code(() =>
        loadLvdmCheckpoint(edited(ckpt, { replace: { alphas_cumprod: other } }), settings, { textHeads: 2 }),
      ),
      /^CKPT_SCHEDULE_MISMATCH: .*"alphas_cumprod"\[500\].*another schedule/,
    );
    assert.match(
      code(() => loadLvdmCheckpoint(ckpt, { ...settings, linearEnd: 0.02 }, { textHeads: 2 })),
      /^CKPT_SCHEDULE_MISMATCH: .*"betas"/,
    );
    assert.match(
      code(() => loadLvdmCheckpoint(ckpt, { ...settings, scaleFactor: 0.13 }, { textHeads: 2 })),
      /^CKPT_SCHEDULE_MISMATCH: .*scale_factor/,
    );
    assert.match(
      code(() =>
        loadLvdmCheckpoint(edited(ckpt, { add: ['cond_stage_model.extra.weight'] }), settings, {
          textHeads: 2,
        }),
      ),
      /^CKPT_KEY_MISMATCH: .*cond_stage_model\.extra\.weight/,
    );
    assert.match(
      code(() => loadLvdmCheckpoint(edited(ckpt, { drop: ['betas'] }), settings, { textHeads: 2 })),
      /^CKPT_KEY_MISMATCH: .*missing the DDPM buffer "betas"/,
    );
    const noOut = ckpt.keys().filter((k) => k.startsWith('model.diffusion_model.out.'));
    assert.match(
      code(() => loadLvdmCheckpoint(edited(ckpt, { drop: noOut }), settings, { textHeads: 2 })),
      /^STATE_DICT_MISMATCH: .*out\.2\.weight/,
    );
  } finally {
    ckpt.close();
  }
});

test('the inference YAML is read with named errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-lvdm-yaml-'));
  try {
    const text = readFileSync(YAML, 'utf8');
    const write = (name: string, body: string): string => {
      writeFileSync(join(dir, name), body);
      return join(dir, name);
    };
    assert.throws(() => readLvdmConfigFile(write('a.yaml', 'model: [1, 2')), /not a readable YAML file/);
    assert.throws(() => readLvdmConfigFile(write('b.yaml', 'other: 1\n')), /"model" must be a mapping/);
    assert.throws(
      () => readLvdmConfigFile(write('c.yaml', text.replace('linear_end: 0.012', 'linear_end: high'))),
      /model\.params\.linear_end must be a number/,
    );
    assert.throws(
      () => readLvdmConfigFile(write('d.yaml', text.replace('layer: penultimate', 'layer: pooled'))),
      (e: Error & { code?: string }) =>
        e.code === 'LVDM_CONFIG' && /layer must be "last" or "penultimate"/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
