// Stage plumbing: loss smoothing and the loss-curve PNG, the persisted loss history, prefetched batches,
// refusing to resume a different setup, and the fp16 component export.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { hostTensor } from '../../../src/engine/runtime.js';
import { SafetensorsFile } from '../../../src/io/safetensors.js';
import { loadStateDict } from '../../../src/io/model_folder.js';
import { saveCheckpoint } from '../../../src/training/checkpoint.js';
import { Linear } from '../../../src/nn/layers.js';
import { lossCurveSvg, smoothLosses, writeLossCurvePng } from '../../../src/training/loss_plot.js';
import { exportComponent, exportTensors } from '../../../src/training/export.js';
import {
  LossHistory,
  LossProgress,
  checkResumable,
  prefetching,
} from '../../../src/training/stages/common.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'kinema-stage-common-'));
}

test('smoothLosses is the debiased EMA (TensorBoard): known values, NaN gaps kept', () => {
  // w = 0.5: acc 2 → 2/(1−0.5) = 4; acc 0.5·2 + 0.5·0 = 1 → 1/0.75; NaN skipped; acc 0.5·1 + 0.5·8 = 4.5 → 4.5/0.875.
  const s = smoothLosses([4, 0, Number.NaN, 8], 0.5);
  assert.equal(s[0], 4);
  assert.ok(Math.abs(s[1]! - 1 / 0.75) < 1e-12);
  assert.ok(Number.isNaN(s[2]!));
  assert.ok(Math.abs(s[3]! - 4.5 / 0.875) < 1e-12);
  assert.deepEqual(smoothLosses([1, 2, 3], 0), [1, 2, 3]);
  assert.throws(() => smoothLosses([1], 1), /\[0, 1\)/);
});

test('the loss curve PNG has the requested size, a white background and both curves', async () => {
  const dir = tempDir();
  try {
    const losses = Array.from({ length: 200 }, (_, i) => 3 * Math.exp(-i / 50) + 0.1 * Math.sin(i));
    const path = join(dir, 'loss.png');
    await writeLossCurvePng(path, losses, { width: 400, height: 300, title: 'test <curve>' });
    const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, 400);
    assert.equal(info.height, 300);
    const px = (x: number, y: number): number[] => {
      const o = (y * info.width + x) * info.channels;
      return [data[o]!, data[o + 1]!, data[o + 2]!];
    };
    assert.deepEqual(px(2, 2), [255, 255, 255]);
    let dark = 0;
    for (let i = 0; i < data.length; i += info.channels) {
      if (data[i] === 0x08 && data[i + 1] === 0x51 && data[i + 2] === 0x9c) dark++;
    }
    assert.ok(dark > 100, `the smoothed curve should be drawn (${dark} pixels)`);
    assert.match(lossCurveSvg(losses, { title: 'a<b' }), /a&#60;b/);
    assert.throws(() => lossCurveSvg([Number.NaN]), /no finite loss/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LossHistory persists, reloads and truncates to a resumed step', () => {
  const dir = tempDir();
  try {
    const h = LossHistory.load(dir);
    h.push(3, 0.5);
    h.push(Number.NaN, 1);
    h.push(1, 1.5);
    h.save();
    const back = LossHistory.load(dir);
    assert.deepEqual(back.losses.slice(0, 1), [3]);
    assert.ok(Number.isNaN(back.losses[1]!));
    assert.equal(back.totalSeconds, 1.5);
    back.truncate(1);
    assert.deepEqual(back.losses, [3]);
    back.truncate(3);
    assert.equal(back.losses.length, 3);
    writeFileSync(join(dir, 'loss_history.json'), '{"losses": [1], "seconds": []}');
    assert.throws(() => LossHistory.load(dir), /equal length/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('prefetching returns the same batches as the plain batch function, in any order', async () => {
  const calls: number[] = [];
  const plain = (s: number) => {
    calls.push(s);
    return { x: hostTensor(new Float32Array([s, s * 2]), [2]) };
  };
  const fetch = prefetching(plain);
  for (const s of [0, 1, 2, 5, 6])
    assert.deepEqual((await fetch(s))['x']!.data, new Float32Array([s, s * 2]));
  assert.ok(calls.includes(3), 'step 3 was prefetched after step 2');
  const failing = prefetching((s) => {
    if (s === 1) throw new Error('bad step 1');
    return plain(s);
  });
  await failing(0);
  await assert.rejects(failing(1), /bad step 1/);
});

test('prefetching an asynchronous batch function: one batch built at a time, the next while a step runs', async () => {
  const events: string[] = [];
  let building = 0;
  const slow = async (s: number) => {
    building++;
    assert.equal(building, 1, 'two batches are never built at once');
    events.push(`start ${s}`);
    await new Promise((ok) => setTimeout(ok, 5));
    events.push(`end ${s}`);
    building--;
    if (s === 3) throw new Error('bad step 3');
    return { x: hostTensor(new Float32Array([s]), [1]) };
  };
  const fetch = prefetching(slow);
  for (const s of [0, 1, 2]) {
    assert.deepEqual((await fetch(s))['x']!.data, new Float32Array([s]));
    events.push(`step ${s}`);
    await new Promise((ok) => setTimeout(ok, 20)); // the "training step"
  }
  // Step s + 1's batch was built while step s ran, so the next call finds it ready.
  assert.deepEqual(events.slice(0, 7), [
    'start 0',
    'end 0',
    'step 0',
    'start 1',
    'end 1',
    'step 1',
    'start 2',
  ]);
  await assert.rejects(fetch(3), /bad step 3/);
  assert.deepEqual((await fetch(7))['x']!.data, new Float32Array([7]), 'a jump builds the asked step');
});

test('LossProgress appends the current and averaged loss to the status line', () => {
  let text = '';
  const bar = new LossProgress({
    label: 'x',
    total: 10,
    unit: 'steps',
    stream: { write: (s) => ((text += s), true) },
  });
  bar.setLoss(2);
  bar.setLoss(1);
  bar.tick();
  assert.match(bar.status(), /loss 1\.0000 \(avg 1\.9500\)/);
  bar.finish();
  assert.match(text, /x: 1 steps/);
});

test('checkResumable refuses a checkpoint made with another setup', () => {
  const dir = tempDir();
  try {
    checkResumable(dir, { stage: 'vae' }); // no checkpoint yet: fine
    saveCheckpoint(join(dir, 'checkpoints'), {
      step: 3,
      params: new Map([['w', new Float32Array(2)]]),
      extra: { stage: 'vae', config: { a: 1 } },
    });
    checkResumable(dir, { stage: 'vae', config: { a: 1 } });
    assert.throws(() => checkResumable(dir, { stage: 'vae', config: { a: 2 } }), /different config/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('exportComponent writes config.json + fp16 safetensors that load back within fp16 rounding', () => {
  const dir = tempDir();
  try {
    const module = new Linear(3, 2);
    const sd = module.initParameters(5);
    writeFileSync(join(dir, 'model.fp16.safetensors'), 'stale');
    const out = exportComponent(dir, {
      config: { in_features: 3 },
      stateDict: sd,
      module,
      weightsBasename: 'diffusion_pytorch_model',
    });
    assert.equal(out.tensorCount, 2);
    assert.equal(out.weightsBytes, (6 + 2) * 2);
    assert.ok(!existsSync(join(dir, 'model.fp16.safetensors')), 'stale weight files are removed');
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), { in_features: 3 });
    const f = SafetensorsFile.open(out.weightsPath);
    try {
      assert.equal(f.info('weight').dtype, 'F16');
      assert.deepEqual(f.info('weight').shape, [2, 3]);
      assert.equal(f.metadata['format'], 'pt');
    } finally {
      f.close();
    }
    const back = loadStateDict(dir).stateDict;
    for (const [k, v] of sd) {
      back.get(k)!.forEach((x, i) => assert.ok(Math.abs(x - v[i]!) <= Math.abs(v[i]!) * 2 ** -11 + 1e-7));
    }
    const big = new Map(sd);
    big.set('bias', new Float32Array([1e5, 0]));
    assert.throws(() => exportTensors(module, big), /'bias' holds 100000 at flat index 0/);
    assert.throws(
      () => exportTensors(module, new Map([['weight', sd.get('weight')!]])),
      /missing keys: bias/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
