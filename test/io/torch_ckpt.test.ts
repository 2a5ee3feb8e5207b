// The safe PyTorch checkpoint reader and `kinema convert`, on torch.save fixtures made by
// scripts/fixtures/torch_ckpt.py (PyTorch 1.13): zip and legacy layouts, every dtype we keep, shared storages with
// offsets and strided views, Lightning files, and hostile pickles that must be refused without running anything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isKinemaError } from '../../src/errors.js';
import { TorchCheckpoint } from '../../src/io/torch_ckpt.js';
import { CheckpointKeyMap } from '../../src/io/checkpoint_keys.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { convertCheckpoint } from '../../src/cli/convert.js';

const FIX = resolve('test/fixtures/torch_ckpt');
interface Expected {
  dtype: string;
  shape: number[];
  sha256: string;
  values: number[];
}
const EXPECTED = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')).fixtures as Record<
  string,
  Record<string, Expected>
>;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isKinemaError(e), `expected a KinemaError, got ${String(e)}`);
    return e.code;
  }
  return 'no error';
}

function checkAgainstExpected(ckpt: TorchCheckpoint, expected: Record<string, Expected>): void {
  assert.deepEqual(ckpt.keys(), Object.keys(expected));
  for (const [key, e] of Object.entries(expected)) {
    assert.deepEqual(ckpt.info(key), { dtype: e.dtype, shape: e.shape }, key);
    assert.equal(sha256(ckpt.readBytes(key)), e.sha256, `bytes of ${key}`);
    const f32 = ckpt.readFloat32(key);
    assert.deepEqual([...f32], e.values.map(Math.fround), `float32 values of ${key}`);
  }
}

for (const file of ['mixed_zip.pt', 'mixed_legacy.pt']) {
  test(`${file}: every tensor bit-exact in its dtype, views of shared storages materialised contiguous`, () => {
    const ckpt = TorchCheckpoint.open(join(FIX, file));
    try {
      assert.equal(ckpt.format, file.includes('zip') ? 'zip' : 'legacy');
      checkAgainstExpected(ckpt, EXPECTED['mixed']!);
      // The fixture's views really are views: one storage, different offsets/strides.
      const base = ckpt.tensor('shared.base');
      for (const k of [
        'shared.row_slice',
        'shared.transposed',
        'shared.every_other_column',
        'shared.element',
      ]) {
        assert.equal(ckpt.tensor(k).storage, base.storage, k);
      }
      assert.equal(ckpt.tensor('shared.row_slice').storageOffset, 6);
      assert.equal(ckpt.tensor('shared.transposed').contiguous, false);
      assert.deepEqual(ckpt.tensor('expanded').stride, [1, 0]);
      assert.equal(ckpt.tensor('param.weight').parameter, true);
      assert.equal(ckpt.read('i64')[2], 2n ** 40n);
    } finally {
      ckpt.close();
    }
  });
}

test('Lightning file: the state_dict is the tensor set (optimizer states are not), scalars become metadata', () => {
  const ckpt = TorchCheckpoint.open(join(FIX, 'lightning.ckpt'));
  try {
    checkAgainstExpected(ckpt, EXPECTED['lightning']!);
    assert.deepEqual(ckpt.metadata, { epoch: '3', global_step: '120', 'pytorch-lightning_version': '1.9.5' });
  } finally {
    ckpt.close();
  }
});

test('an unknown global is refused by name; inertUnknown keeps it as an inert placeholder outside the tensors', () => {
  const path = join(FIX, 'lightning_namespace.ckpt');
  assert.throws(() => TorchCheckpoint.open(path), /CKPT_UNSAFE_GLOBAL|argparse\.Namespace/);
  assert.equal(
    codeOf(() => TorchCheckpoint.open(path)),
    'CKPT_UNSAFE_GLOBAL',
  );
  const ckpt = TorchCheckpoint.open(path, { inertUnknown: true });
  try {
    checkAgainstExpected(ckpt, EXPECTED['lightning']!);
  } finally {
    ckpt.close();
  }
});

test('hostile pickles are refused with their named errors and nothing runs', () => {
  const marker = '/tmp/kinema_pwned';
  rmSync(marker, { force: true });
  const cases: [string, string, RegExp][] = [
    ['hostile_os_system.pt', 'CKPT_UNSAFE_GLOBAL', /"posix\.system"/],
    ['hostile_eval_legacy.pt', 'CKPT_UNSAFE_GLOBAL', /"__builtin__\.eval"/],
    ['hostile_storage_call.pt', 'CKPT_UNSAFE_CALL', /torch\.FloatStorage/],
    ['hostile_offset.pt', 'CKPT_STORAGE_OUT_OF_RANGE', /offset 1000/],
    ['truncated_zip.pt', 'CKPT_TRUNCATED', /truncated/],
    ['truncated_legacy.pt', 'CKPT_TRUNCATED', /past the end/],
  ];
  for (const [file, code, message] of cases) {
    for (const inertUnknown of [false, true]) {
      if (inertUnknown && code === 'CKPT_UNSAFE_GLOBAL') continue;
      assert.throws(() => TorchCheckpoint.open(join(FIX, file), { inertUnknown }), message, file);
      assert.equal(
        codeOf(() => TorchCheckpoint.open(join(FIX, file), { inertUnknown })),
        code,
        file,
      );
    }
  }
  // Inert: os.system is recorded, never called; the tensor beside it still loads.
  const ckpt = TorchCheckpoint.open(join(FIX, 'hostile_os_system.pt'), { inertUnknown: true });
  assert.deepEqual(ckpt.keys(), ['w']);
  assert.deepEqual(ckpt.skipped, ['x']);
  assert.deepEqual([...ckpt.readFloat32('w')], [1, 1]);
  ckpt.close();
  assert.equal(existsSync(marker), false);
});

test('not a checkpoint, a missing file: named errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-ckpt-'));
  try {
    writeFileSync(join(dir, 'x.ckpt'), 'hello world, not a checkpoint');
    assert.equal(
      codeOf(() => TorchCheckpoint.open(join(dir, 'x.ckpt'))),
      'CKPT_NOT_A_CHECKPOINT',
    );
    assert.equal(
      codeOf(() => TorchCheckpoint.open(join(dir, 'absent.ckpt'))),
      'CKPT_NOT_FOUND',
    );
    writeFileSync(join(dir, 'empty.ckpt'), '');
    assert.notEqual(
      codeOf(() => TorchCheckpoint.open(join(dir, 'empty.ckpt'))),
      'no error',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mutated checkpoints fail only with KinemaErrors (never another exception, never a hang)', () => {
  let seed = 0x2545f491;
  // mulberry32: all 32 bits usable (a plain LCG's low bits cycle and would pick the same mutation kinds).
  const rand = (n: number): number => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
  const dir = mkdtempSync(join(tmpdir(), 'kinema-ckpt-fuzz-'));
  let failures = 0;
  try {
    for (const file of ['mixed_zip.pt', 'mixed_legacy.pt', 'lightning.ckpt']) {
      const original = readFileSync(join(FIX, file));
      for (let i = 0; i < 150; i++) {
        const bytes = Uint8Array.from(original);
        const kind = rand(3);
        let mutated: Uint8Array = bytes;
        if (kind === 0) for (let j = 0; j < 1 + rand(4); j++) bytes[rand(bytes.length)] = rand(256);
        else if (kind === 1) mutated = bytes.subarray(0, rand(bytes.length));
        else {
          const at = rand(bytes.length);
          mutated = Buffer.concat([
            bytes.subarray(0, at),
            Buffer.from([rand(256), rand(256)]),
            bytes.subarray(at),
          ]);
        }
        const path = join(dir, `m${i}.pt`);
        writeFileSync(path, mutated);
        try {
          const ckpt = TorchCheckpoint.open(path, { inertUnknown: rand(2) === 1 });
          for (const k of ckpt.keys()) ckpt.readFloat32(k);
          ckpt.close();
        } catch (e) {
          if (!isKinemaError(e)) {
            failures++;
            assert.fail(`${file} mutation ${i} (kind ${kind}) threw a non-Kinema error: ${String(e)}`);
          }
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(failures, 0);
});

test('CheckpointKeyMap: models take keys by prefix; a key nobody takes, or a prefix with none, is a named error', () => {
  const ckpt = TorchCheckpoint.open(join(FIX, 'lightning.ckpt'));
  try {
    const keys = new CheckpointKeyMap(ckpt);
    const unet = keys.take('model.diffusion_model.');
    assert.deepEqual([...unet.stateDict.keys()], ['out.2.weight']);
    assert.deepEqual(unet.shapes.get('out.2.weight'), [4, 8, 3, 3]);
    assert.throws(
      () => keys.assertAllUsed('an LVDM model'),
      /2 keys are not part of an LVDM model: model\.betas/,
    );
    assert.equal(keys.tensor('model.betas').data.length, 10);
    const vae = keys.take('first_stage_model.', (rest) => rest.replace('encoder.', 'enc.'));
    assert.deepEqual([...vae.stateDict.keys()], ['enc.conv_in.bias']);
    keys.assertAllUsed('an LVDM model');
    assert.throws(() => keys.take('cond_stage_model.model.'), /no tensors under "cond_stage_model\.model\."/);
  } finally {
    ckpt.close();
  }
});

test('convertCheckpoint writes every tensor bit-exactly under its key (views, fp16, bf16, int64)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-convert-'));
  try {
    for (const [file, group] of [
      ['mixed_zip.pt', 'mixed'],
      ['mixed_legacy.pt', 'mixed'],
      ['lightning.ckpt', 'lightning'],
    ] as const) {
      const out = join(dir, `${file}.safetensors`);
      const r = convertCheckpoint(join(FIX, file), out);
      const expected = EXPECTED[group]!;
      assert.equal(r.tensors, Object.keys(expected).length);
      const st = SafetensorsFile.open(out);
      try {
        assert.deepEqual(st.names(), Object.keys(expected).sort());
        for (const [key, e] of Object.entries(expected)) {
          assert.deepEqual(
            { dtype: st.info(key).dtype, shape: st.info(key).shape },
            { dtype: e.dtype, shape: e.shape },
          );
          assert.equal(sha256(st.readBytes(key)), e.sha256, `${file}: ${key}`);
        }
        if (group === 'lightning') assert.equal(st.metadata['global_step'], '120');
      } finally {
        st.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kinema convert: CLI writes the file; a hostile or truncated input exits non-zero and leaves no output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-convert-cli-'));
  const kinema = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'convert', ...args], {
      encoding: 'utf8',
    });
  try {
    const ok = kinema([
      join(FIX, 'lightning_namespace.ckpt'),
      '-o',
      join(dir, 'ok.safetensors'),
      '--inert-unknown',
    ]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /3 tensors/);
    const refused = kinema([join(FIX, 'lightning_namespace.ckpt'), '-o', join(dir, 'no.safetensors')]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /argparse\.Namespace/);
    const hostile = kinema([join(FIX, 'hostile_offset.pt'), '-o', join(dir, 'no2.safetensors')]);
    assert.notEqual(hostile.status, 0);
    assert.match(hostile.stderr, /offset 1000/);
    assert.deepEqual(readdirSync(dir), ['ok.safetensors']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
