// The checks `kinema generate` makes before any work (src/cli/generate_checks.ts): each bad request is refused
// with its catalogued code, quickly, without creating anything under the output name. The CLI cases spawn the
// real command on the shipped default model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isKinemaError } from '../../src/errors.js';
import { planGenerate, outputFormat } from '../../src/cli/generate_checks.js';
import type { GenerateCheckFlags } from '../../src/cli/generate_checks.js';
import { DEFAULT_MODEL_DIR } from '../../src/cli/generate.js';
import { estimateRunMemory, parseByteSize } from '../../src/pipelines/memory_estimate.js';
import { parseUNet3DConfig } from '../../src/models/unet3d/config.js';
import { parseVaeConfig } from '../../src/models/vae/config.js';
import { readConfig } from '../../src/io/model_folder.js';

function kinema(args: string[]) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { ...r, ms: performance.now() - t0 };
}

function flags(over: Partial<GenerateCheckFlags>): GenerateCheckFlags {
  return { output: join(tmpdir(), 'kinema-check.mp4'), frames: 16, steps: 25, ...over };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isKinemaError(e), `not a KinemaError: ${String(e)}`);
    return e.code;
  }
  assert.fail('expected an error');
}

test('memory guard: --width 4000 --height 4000 is refused in under a second of work, naming the estimate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-mem-'));
  try {
    const out = join(dir, 'big.mp4');
    // The refusal's own cost is its time beyond starting the CLI at all (tsx compiles on start).
    const baseline = kinema(['--version']);
    assert.equal(baseline.status, 0, baseline.stderr);
    const r = kinema([
      'generate',
      'a red circle moves left',
      '--width',
      '4000',
      '--height',
      '4000',
      '-o',
      out,
    ]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /\[GENERATE_OUT_OF_MEMORY\]/);
    assert.match(r.stderr, /needs an estimated [\d.]+ (GiB|TiB)/);
    assert.match(r.stderr, /limit of [\d.]+ (MiB|GiB|TiB)/);
    assert.ok(
      r.ms - baseline.ms < 1000,
      `refusal took ${(r.ms - baseline.ms).toFixed(0)} ms beyond CLI start`,
    );
    assert.deepEqual(readdirSync(dir), [], 'nothing written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('memory guard: the default run fits; --max-memory below its estimate refuses it; the estimate grows with the request', () => {
  const plan = planGenerate('a red circle moves left', flags({}), DEFAULT_MODEL_DIR);
  assert.equal(plan.width, 64);
  assert.ok(plan.memory.total < 2 * 2 ** 30, `default estimate ${plan.memory.total}`);
  assert.equal(
    codeOf(() => planGenerate('a red circle', flags({ maxMemory: '100M' }), DEFAULT_MODEL_DIR)),
    'GENERATE_OUT_OF_MEMORY',
  );
  assert.equal(
    codeOf(() => planGenerate('a red circle', flags({ maxMemory: 'lots' }), DEFAULT_MODEL_DIR)),
    'GENERATE_BAD_OPTION',
  );
  const unet = parseUNet3DConfig(readConfig(join(DEFAULT_MODEL_DIR, 'unet')));
  const vae = parseVaeConfig(readConfig(join(DEFAULT_MODEL_DIR, 'vae')));
  const at = (width: number, frames: number) =>
    estimateRunMemory({
      unet,
      vae,
      weightBytes: 1e7,
      halfWeights: true,
      width,
      height: width,
      frames,
      outputFrames: frames,
    }).total;
  assert.ok(at(128, 16) > at(64, 16) && at(64, 32) > at(64, 16));
  assert.equal(parseByteSize('8G'), 8 * 2 ** 30);
  assert.equal(parseByteSize('512MiB'), 512 * 2 ** 20);
  assert.equal(parseByteSize('1.5g'), 1.5 * 2 ** 30);
});

test('-o into a missing folder is refused before any work, and nothing is created', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-out-'));
  try {
    const r = kinema(['generate', 'a red circle moves left', '-o', join(dir, 'no', 'such', 'x.mp4')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /does not exist.*\[OUTPUT_NOT_WRITABLE\]/);
    assert.doesNotMatch(r.stderr, /step|denois/i, 'refused before generating');
    assert.deepEqual(readdirSync(dir), []);
    // -o naming an existing folder for a file format, and a read-only folder.
    assert.equal(
      codeOf(() => planGenerate('a red circle', flags({ output: dir, format: 'mp4' }), DEFAULT_MODEL_DIR)),
      'GENERATE_FORMAT_MISMATCH',
    );
    const sub = join(dir, 'clip.mp4');
    spawnSync('mkdir', [sub]);
    assert.equal(
      codeOf(() => planGenerate('a red circle', flags({ output: sub }), DEFAULT_MODEL_DIR)),
      'OUTPUT_NOT_WRITABLE',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--format png -o x.mp4 is an error (no folder named x.mp4); an agreeing --format is fine', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-fmt-'));
  try {
    const r = kinema(['generate', 'a red circle moves left', '--format', 'png', '-o', join(dir, 'x.mp4')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--format png contradicts -o .*x\.mp4.*\[GENERATE_FORMAT_MISMATCH\]/);
    assert.equal(existsSync(join(dir, 'x.mp4')), false);
    assert.equal(outputFormat(join(dir, 'x.mp4'), 'mp4'), 'mp4');
    assert.equal(outputFormat(join(dir, 'frames/'), 'png'), 'png');
    assert.equal(outputFormat(join(dir, 'x.gif'), undefined), 'gif');
    assert.throws(() => outputFormat(join(dir, 'x.gif'), 'webm'), /GENERATE_FORMAT_MISMATCH|contradicts/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a model folder whose model_index.json names a class Kinema does not implement is refused, naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-idx-'));
  try {
    const model = join(dir, 'model');
    cpSync(DEFAULT_MODEL_DIR, model, { recursive: true, filter: (p) => !p.endsWith('.safetensors') });
    const indexPath = join(model, 'model_index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8'));
    writeFileSync(indexPath, JSON.stringify({ ...index, unet: ['diffusers', 'UNet2DConditionModel'] }));
    const r = kinema(['generate', 'a red circle', '--model', model, '-o', join(dir, 'x.mp4')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /"unet" is a UNet2DConditionModel.*\[MODEL_UNKNOWN_CLASS\]/);
    writeFileSync(indexPath, JSON.stringify({ ...index, _class_name: 'StableDiffusionPipeline' }));
    assert.equal(
      codeOf(() => planGenerate('a red circle', flags({ model }), DEFAULT_MODEL_DIR)),
      'MODEL_UNKNOWN_CLASS',
    );
    assert.equal(existsSync(join(dir, 'x.mp4')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate --help states the size multiple, the default scheduler and the vocabulary with an example per attribute', () => {
  const r = kinema(['generate', '--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /multiples? of .*VAE factor \(8 for the default model/);
  assert.match(r.stdout, /DDIM for the default\s+model/);
  for (const attribute of ['shapes', 'colours', 'motions', 'size, speed', 'backgrounds', 'two objects']) {
    assert.match(r.stdout, new RegExp(`${attribute}[^\\n]*\\n?[^\\n]*e\\.g\\. "`), attribute);
  }
});

test('command-line parse errors are one line with CLI_BAD_ARGUMENT and exit 1; --help and --version exit 0', () => {
  const bad = kinema(['generate', 'a red circle', '--frames', 'abc']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^kinema: .*--frames.*\[(CLI_BAD_ARGUMENT|GENERATE_BAD_OPTION)\]\n$/);
  const unknown = kinema(['generate', 'a red circle', '--colour', 'red']);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /unknown option '--colour'.*\[CLI_BAD_ARGUMENT\]/);
  const none = kinema(['frobnicate']);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /\[CLI_BAD_ARGUMENT\]/);
  assert.equal(kinema(['--help']).status, 0);
});
