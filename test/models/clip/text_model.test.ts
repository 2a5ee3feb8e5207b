import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SafetensorsFile } from '../../../src/io/safetensors.js';
import { ModelLoadError } from '../../../src/io/model_folder.js';
import { readConfig } from '../../../src/io/model_folder.js';
import { CLIPTextModel, ClipTextRoot } from '../../../src/models/clip/text_model.js';
import { parseClipTextConfig } from '../../../src/models/clip/config.js';
import type { HostTensor } from '../../../src/engine/runtime.js';

const PARITY = resolve(process.cwd(), process.env['KINEMA_PARITY_FIXTURES'] ?? '../shared/fixtures/parity');
const GELU = join(PARITY, 'text_encoder');
const QUICK = join(PARITY, 'text_encoder_quick_gelu');

const temps: string[] = [];
after(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kinema-clip-text-'));
  temps.push(d);
  return d;
}

interface Ref {
  data: Float32Array;
  shape: number[];
}
function readIo(dir: string): {
  ref: (name: string) => Ref;
  ids: BigInt64Array;
  mask: BigInt64Array;
  names: string[];
} {
  const f = SafetensorsFile.open(join(dir, 'io.safetensors'));
  try {
    const names = f.names();
    const all = new Map(names.map((n) => [n, { data: f.readFloat32(n), shape: f.info(n).shape }] as const));
    const ids = f.read('input_ids') as BigInt64Array;
    const mask = f.read('attention_mask') as BigInt64Array;
    return {
      names,
      ids: BigInt64Array.from(ids),
      mask: BigInt64Array.from(mask),
      ref: (name) => {
        const r = all.get(name);
        assert.ok(r, `fixture ${dir}/io.safetensors has no '${name}'`);
        return r;
      },
    };
  } finally {
    f.close();
  }
}

/** Asserts max |got − ref| ≤ 1e-4 · max |ref| and prints the measured error. */
function assertClose(label: string, got: HostTensor, ref: Ref): void {
  assert.deepEqual([...got.shape], ref.shape, `${label}: shape`);
  const g = got.data as Float32Array;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.data.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(g[i]! - ref.data[i]!));
    maxRef = Math.max(maxRef, Math.abs(ref.data[i]!));
  }
  console.log(`${label}: max abs diff ${maxDiff.toExponential(3)} (max |ref| ${maxRef.toFixed(3)})`);
  assert.ok(
    Number.isFinite(maxDiff) && maxDiff <= 1e-4 * maxRef,
    `${label}: max abs diff ${maxDiff} > 1e-4 × ${maxRef}`,
  );
}

/** A folder with `configDir`'s config.json (optionally edited) and the gelu encoder's weights (linked). */
function folderWith(configDir: string, edit: (cfg: Record<string, unknown>) => void = () => {}): string {
  const dir = tempDir();
  const cfg = readConfig(configDir);
  edit(cfg);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  symlinkSync(join(GELU, 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

test('CLIPTextModel (gelu) matches transformers: last_hidden_state, pooler_output, hidden_states', async () => {
  const io = readIo(GELU);
  const model = await CLIPTextModel.fromPretrained(GELU);
  assert.equal(model.config.hiddenAct, 'gelu');
  assert.equal(model.withProjection, false);
  const out = await model.encode(io.ids, { outputHiddenStates: true });
  assertClose('gelu last_hidden_state', out.lastHiddenState, io.ref('last_hidden_state'));
  assertClose('gelu pooler_output', out.pooledOutput, io.ref('pooler_output'));
  assert.equal(out.hiddenStates?.length, 3);
  for (let i = 0; i < 3; i++)
    assertClose(`gelu hidden_states.${i}`, out.hiddenStates![i]!, io.ref(`hidden_states.${i}`));
});

test('CLIPTextModel (gelu) with an attention mask matches transformers', async () => {
  const io = readIo(GELU);
  const model = await CLIPTextModel.fromPretrained(GELU);
  const out = await model.encode(io.ids, { attentionMask: io.mask });
  assertClose(
    'gelu last_hidden_state (mask)',
    out.lastHiddenState,
    io.ref('last_hidden_state_with_attention_mask'),
  );
  assertClose('gelu pooler_output (mask)', out.pooledOutput, io.ref('pooler_output_with_attention_mask'));
  assert.equal(out.hiddenStates, undefined);
});

test('CLIPTextModel (quick_gelu, weights of ../text_encoder) matches transformers', async () => {
  const io = readIo(QUICK);
  const model = await CLIPTextModel.fromPretrained(folderWith(QUICK));
  assert.equal(model.config.hiddenAct, 'quick_gelu');
  const out = await model.encode(io.ids, { outputHiddenStates: true });
  assertClose('quick_gelu last_hidden_state', out.lastHiddenState, io.ref('last_hidden_state'));
  assertClose('quick_gelu pooler_output', out.pooledOutput, io.ref('pooler_output'));
  assertClose('quick_gelu hidden_states.1', out.hiddenStates![1]!, io.ref('hidden_states.1'));
});

test('number[][] ids, a smaller batch and shorter sequences give the same rows', async () => {
  const io = readIo(GELU);
  const model = await CLIPTextModel.fromPretrained(GELU);
  const rows = [0, 10].map((r) => Array.from(io.ids.subarray(r * 77, (r + 1) * 77), Number));
  const out = await model.encode(rows);
  const ref = io.ref('pooler_output');
  assertClose('pooler rows 0,10', out.pooledOutput, {
    data: Float32Array.from([...ref.data.subarray(0, 32), ...ref.data.subarray(320, 352)]),
    shape: [2, 32],
  });
  // Causal attention: a prefix that still contains the eos token pools to the same vector.
  const eos = rows[0]!.indexOf(49407);
  const short = await model.encode([rows[0]!.slice(0, eos + 1)]);
  assertClose('pooler of the unpadded prompt', short.pooledOutput, {
    data: ref.data.slice(0, 32),
    shape: [1, 32],
  });
});

test('pooling: eos_token_id 2 pools at argmax(ids); other eos ids pool at their first occurrence', async () => {
  const model = await CLIPTextModel.fromPretrained(folderWith(GELU, (c) => (c['eos_token_id'] = 320)));
  assert.equal(model.config.eosTokenId, 320);
  const ids = [
    [49406, 1000, 320, 500, 320, 49407, 0, 0],
    [49406, 7, 8, 9, 49407, 0, 0, 0], // no 320: transformers' argmax of an all-false row is position 0
  ];
  const out = await model.encode(ids);
  const last = out.lastHiddenState.data as Float32Array;
  const pooled = out.pooledOutput.data as Float32Array;
  assert.deepEqual(pooled.subarray(0, 32), last.subarray(2 * 32, 3 * 32));
  assert.deepEqual(pooled.subarray(32, 64), last.subarray(8 * 32, 8 * 32 + 32));

  const legacy = await CLIPTextModel.fromPretrained(GELU);
  const outLegacy = await legacy.encode([
    [49406, 1000, 49407, 49407, 0],
    [3, 2, 1, 0, 3],
  ]);
  const l2 = outLegacy.lastHiddenState.data as Float32Array;
  const p2 = outLegacy.pooledOutput.data as Float32Array;
  assert.deepEqual(p2.subarray(0, 32), l2.subarray(2 * 32, 3 * 32));
  assert.deepEqual(p2.subarray(32, 64), l2.subarray(5 * 32, 5 * 32 + 32)); // first maximum (3) is at position 0
});

test('CLIPTextModelWithProjection adds text_embeds = text_projection(pooled)', async () => {
  const dir = tempDir();
  const cfg = readConfig(GELU);
  cfg['architectures'] = ['CLIPTextModelWithProjection'];
  cfg['projection_dim'] = 3;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  const config = parseClipTextConfig(cfg);
  const module = new ClipTextRoot(config, true);
  const sd = module.initParameters(5);
  const src = SafetensorsFile.open(join(GELU, 'model.safetensors'));
  for (const name of src.names()) sd.set(name, src.readFloat32(name));
  src.close();
  const { writeSafetensors } = await import('../../../src/io/safetensors.js');
  writeSafetensors(
    join(dir, 'model.safetensors'),
    new Map(
      [...sd].map(([k, v]) => [
        k,
        { dtype: 'F32' as const, shape: [...module.namedParameters().get(k)!.shape], data: v },
      ]),
    ),
  );
  const model = await CLIPTextModel.fromPretrained(dir);
  assert.equal(model.withProjection, true);
  const io = readIo(GELU);
  const out = await model.encode(io.ids.slice(0, 77));
  assertClose('pooler (with projection model)', out.pooledOutput, {
    data: io.ref('pooler_output').data.slice(0, 32),
    shape: [1, 32],
  });
  const w = sd.get('text_projection.weight')!;
  const pooled = out.pooledOutput.data as Float32Array;
  const expected = [0, 1, 2].map((o) => pooled.reduce((s, x, i) => s + x * w[o * 32 + i]!, 0));
  const got = out.textEmbeds!.data as Float32Array;
  assert.deepEqual([...out.textEmbeds!.shape], [1, 3]);
  expected.forEach((e, i) => assert.ok(Math.abs(got[i]! - e) < 1e-5, `text_embeds[${i}] ${got[i]} vs ${e}`));
});

test('loading is strict and inputs are validated', async () => {
  const wrongShape = folderWith(GELU, (c) => (c['intermediate_size'] = 36));
  await assert.rejects(
    CLIPTextModel.fromPretrained(wrongShape),
    (e: unknown) =>
      e instanceof ModelLoadError &&
      /shape mismatch for 'text_model\.encoder\.layers\.0\.mlp\.fc1\.weight'/.test(e.message),
  );
  const fewerLayers = folderWith(GELU, (c) => (c['num_hidden_layers'] = 1));
  await assert.rejects(
    CLIPTextModel.fromPretrained(fewerLayers),
    /unexpected keys: text_model\.encoder\.layers\.1\./,
  );
  const moreLayers = folderWith(GELU, (c) => (c['num_hidden_layers'] = 3));
  await assert.rejects(
    CLIPTextModel.fromPretrained(moreLayers),
    /missing keys: text_model\.encoder\.layers\.2\./,
  );
  const badAct = folderWith(GELU, (c) => (c['hidden_act'] = 'mish'));
  await assert.rejects(CLIPTextModel.fromPretrained(badAct), /"hidden_act" must be one of/);
  const noWeights = tempDir();
  copyFileSync(join(GELU, 'config.json'), join(noWeights, 'config.json'));
  await assert.rejects(CLIPTextModel.fromPretrained(noWeights), /no weights file/);

  const model = await CLIPTextModel.fromPretrained(GELU);
  await assert.rejects(model.encode([[49406, 49408]]), /token id 49408 .* outside the vocabulary/);
  await assert.rejects(model.encode([[1, 2], [3]]), /row 1 has 1 values/);
  await assert.rejects(model.encode([new Array<number>(78).fill(1)]), /exceeds max_position_embeddings 77/);
  await assert.rejects(model.encode(new BigInt64Array(100)), /not a whole number of rows of 77/);
  await assert.rejects(model.encode([[1, 2]], { attentionMask: [[1, 1, 1]] }), /attention mask/);
});
