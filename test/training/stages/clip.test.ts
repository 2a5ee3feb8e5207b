// The CLIP stage on a tiny configuration: the BPE tokenizer covers any text, the InfoNCE loss equals an
// independent float64 computation from the model's own features, the model memorises a fixed batch, the stage
// lowers its loss and resumes a killed run on the identical curve, and the exported text encoder (fp16)
// matches the trained float32 weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTensor } from '../../../src/engine/runtime.js';
import { Generator } from '../../../src/engine/random.js';
import { CLIPModel } from '../../../src/models/clip/clip_model.js';
import { CLIPTextModel, ClipTextRoot } from '../../../src/models/clip/text_model.js';
import { CLIPTokenizer } from '../../../src/models/clip/tokenizer.js';
import { parseClipConfig } from '../../../src/models/clip/config.js';
import { loadLatestCheckpoint } from '../../../src/training/checkpoint.js';
import { GradStep, train } from '../../../src/training/trainer.js';
import {
  ClipTrainingModel,
  clipModelConfigJson,
  contrastiveLoss,
  createClipStage,
  type ClipArchitecture,
} from '../../../src/training/stages/clip.js';
import { tokenIds, worldPairs } from '../../../src/training/stages/clip_data.js';
import type { StageOptions } from '../../../src/training/stages/common.js';

const ARCH: ClipArchitecture = {
  hiddenSize: 16,
  intermediateSize: 32,
  numAttentionHeads: 2,
  textLayers: 1,
  visionLayers: 1,
  projectionDim: 16,
  imageSize: 16,
  patchSize: 8,
  maxPositionEmbeddings: 40,
  hiddenAct: 'quick_gelu',
};
const SETTINGS = {
  architecture: ARCH,
  tokenizerCaptions: 1000,
  vocabSize: 1000,
  evalBatches: 1,
  evalBatchSize: 8,
  warmupSteps: 2,
};
const quiet = { write: () => true };

function options(out: string, extra: Partial<StageOptions> = {}): StageOptions {
  return { out, steps: 10, batch: 8, lr: 3e-3, seed: 1, checkpointEvery: 3, log: quiet, ...extra };
}

const TOK_CONFIG = { vocabSize: 700, bosTokenId: 698, eosTokenId: 699, padTokenId: 699 };

test('InfoNCE equals a float64 computation from the model features, and a fixed batch is memorised', async () => {
  const config = parseClipConfig(clipModelConfigJson(ARCH, TOK_CONFIG));
  const model = new ClipTrainingModel(config);
  const params = model.initParameters(4);
  assert.ok(
    Math.abs(Math.exp(params.get('logit_scale')![0]!) - 14.2857) < 1e-3,
    'logit scale starts at 1/0.07',
  );
  const qStd = Math.sqrt(
    params.get('text_model.encoder.layers.0.self_attn.q_proj.weight')!.reduce((a, v) => a + v * v, 0) / 256,
  );
  assert.ok(Math.abs(qStd - 16 ** -0.5 * 2 ** -0.5) < 0.03, `q_proj std ${qStd} (transformers init)`);
  const b = 6;
  const rng = new Generator(9);
  const pixels = rng.uniform(b * 3 * 16 * 16).map((v) => v * 2 - 1);
  const ids = new BigInt64Array(b * 12);
  for (let i = 0; i < b; i++) {
    ids[i * 12] = 698n;
    for (let j = 1; j < 12; j++) ids[i * 12 + j] = j === 4 + i ? 699n : BigInt((i * 37 + j * 11) % 600);
  }
  const batch = {
    pixel_values: hostTensor(pixels, [b, 3, 16, 16]),
    input_ids: hostTensor(ids, [b, 12], 'int64'),
  };
  const step = await GradStep.create(
    (x) => contrastiveLoss(model, x['pixel_values']!, x['input_ids']!),
    [
      { name: 'pixel_values', shape: [b, 3, 16, 16] },
      { name: 'input_ids', shape: [b, 12], dtype: 'int64' },
    ],
  );
  const first = await step.run(params, batch);
  // Independent value: features from the inference model, InfoNCE on the host in float64.
  const ref = new CLIPModel(config, model, params);
  const img = (await ref.getImageFeatures(pixels, b)).data as Float32Array;
  const rows = Array.from({ length: b }, (_, i) => Array.from(ids.subarray(i * 12, (i + 1) * 12), Number));
  const txt = (await ref.getTextFeatures(rows)).data as Float32Array;
  const unit = (v: Float32Array, i: number) => {
    const row = Array.from(v.subarray(i * 16, (i + 1) * 16));
    const n = Math.hypot(...row);
    return row.map((x) => x / n);
  };
  const logits = Array.from({ length: b }, (_, i) =>
    Array.from(
      { length: b },
      (_, j) => ref.logitScale * unit(img, i).reduce((a, x, k) => a + x * unit(txt, j)[k]!, 0),
    ),
  );
  const ce = (row: number[], target: number) =>
    Math.log(row.reduce((a, x) => a + Math.exp(x), 0)) - row[target]!;
  let expected = 0;
  for (let i = 0; i < b; i++)
    expected +=
      ce(logits[i]!, i) +
      ce(
        logits.map((r) => r[i]!),
        i,
      );
  expected /= 2 * b;
  assert.ok(Math.abs(first.loss - expected) < 1e-4, `loss ${first.loss} vs float64 ${expected}`);
  const run = await train({
    model,
    step,
    batch: () => batch,
    totalSteps: 40,
    optimizer: { lr: 3e-3 },
    seed: 4,
  });
  assert.ok(run.losses.at(-1)! < 0.3 * Math.log(b), `memorised: final loss ${run.losses.at(-1)} vs ln ${b}`);
});

test('the tokenizer trained on world captions encodes any text through its byte tokens', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-clip-tok-'));
  try {
    await createClipStage(SETTINGS).run(options(dir, { steps: 1 }));
    const tok = await CLIPTokenizer.fromPretrained(join(dir, 'tokenizer'));
    assert.equal(tok.padTokenId, tok.eosTokenId, 'pads with <|endoftext|> like SD 1.x');
    for (const text of ['a red circle moves left', 'Zebra über 🚀 日本語']) {
      assert.equal(tok.decode(tok.encodeRaw(text)), text.toLowerCase());
    }
    const world = tok.tokens('a red circle moves left on a blue background');
    assert.ok(
      world.every((t) => t.endsWith('</w>')),
      `world words are whole tokens: ${world.join(' ')}`,
    );
    const ids = tokenIds(tok, ['a red circle'], 40).data as BigInt64Array;
    assert.equal(ids[0], BigInt(tok.bosTokenId));
    assert.equal(ids[4], BigInt(tok.eosTokenId));
    assert.equal(ids[39], BigInt(tok.padTokenId));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('clip stage: the loss falls, a killed run resumes on the identical curve, exports round-trip', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-clip-stage-'));
  try {
    const stage = createClipStage(SETTINGS);
    const full = await stage.run(options(join(root, 'full'), { exportDir: join(root, 'pipe') }));
    assert.equal(full.completed, true);
    const head = full.losses.slice(0, 3).reduce((a, v) => a + v) / 3;
    const tail = full.losses.slice(-3).reduce((a, v) => a + v) / 3;
    assert.ok(tail < head, `loss should fall: first ${head}, last ${tail}`);

    let steps = 0;
    const killed = await stage.run(options(join(root, 'resumed'), { shouldStop: () => ++steps === 5 }));
    assert.equal(killed.completed, false);
    assert.equal(killed.step, 5);
    assert.equal(existsSync(join(root, 'resumed', 'clip_model')), false, 'no model folder before the end');
    const resumed = await stage.run(options(join(root, 'resumed'), { exportDir: join(root, 'pipe2') }));
    assert.deepEqual(resumed.losses, full.losses, 'resumed loss curve must be identical');

    const metrics = JSON.parse(readFileSync(join(root, 'full', 'metrics.json'), 'utf8'));
    assert.equal(metrics.steps, 10);
    assert.ok(metrics.heldout_text_to_image_top1 >= 0 && metrics.heldout_text_to_image_top1 <= 1);
    assert.ok(existsSync(join(root, 'full', 'loss.png')));

    // The exported fp16 text encoder against the trained float32 (EMA) weights.
    const ckpt = loadLatestCheckpoint(join(root, 'full', 'checkpoints'))!;
    const weights = ckpt.ema!.stateDict();
    const exported = await CLIPTextModel.fromPretrained(join(root, 'pipe', 'text_encoder'));
    const textWeights = new Map([...weights].filter(([k]) => k.startsWith('text_model.')));
    const reference = new CLIPTextModel(
      exported.config,
      new ClipTextRoot(exported.config, false),
      textWeights,
    );
    const tok = await CLIPTokenizer.fromPretrained(join(root, 'pipe', 'tokenizer'));
    const ids = [
      tok.encode('a small green triangle bounces on a red background', { maxLength: 40 }).inputIds,
    ];
    const a = (await exported.encode(ids)).lastHiddenState.data as Float32Array;
    const b = (await reference.encode(ids)).lastHiddenState.data as Float32Array;
    let worst = 0;
    a.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b[i]!))));
    assert.ok(worst < 2e-2, `fp16 export differs from float32 by up to ${worst}`);
    assert.ok(worst > 0, 'the export is really fp16');
    // The full CLIPModel folder loads with its tokenizer and preprocessing.
    const clip = await CLIPModel.fromPretrained(join(root, 'full', 'clip_model'));
    assert.equal(clip.config.visionConfig.imageSize, 16);
    const pairs = worldPairs(1, [0, 1], [false, true], 'heldout', 16, 16);
    assert.equal((await clip.getImageFeatures(pairs.pixels, 2)).shape.join(), '2,16');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
