// `kinema generate "<prompt>"` with no other flags uses the shipped default model (models/default) and its
// defaults (16 frames, 64×64, 25 steps, fps 8); words the default model never saw are named on stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readAllFrames } from '../../src/io/video/index.js';
import { DEFAULT_MODEL_DIR, unseenWords } from '../../src/cli/generate.js';

const KINEMA = resolve(process.cwd(), 'bin/kinema.mjs');
const HAS_MODEL = existsSync(join(DEFAULT_MODEL_DIR, 'model_index.json'));
const SKIP = HAS_MODEL
  ? false
  : `no default model yet: ${join(DEFAULT_MODEL_DIR, 'model_index.json')} does not exist (train and export it)`;

function kinema(cwd: string, args: string[]) {
  return spawnSync(process.execPath, [KINEMA, ...args], { cwd, encoding: 'utf8', timeout: 300_000 });
}

test('unseenWords lists the words outside the vocabulary, lower-cased, once, in prompt order', () => {
  const vocab = new Set(['a', 'red', 'circle', 'moves', 'left']);
  assert.deepEqual(unseenWords('A red circle moves left', vocab), []);
  assert.deepEqual(unseenWords('A Zebra moves left, zebra jumps; 3 moons', vocab), [
    'zebra',
    'jumps',
    '3',
    'moons',
  ]);
  // Against the world's caption grammar: its canonical words are known, invented ones are not.
  assert.deepEqual(unseenWords('a red circle moves left on a blue background'), []);
  assert.deepEqual(unseenWords('a purple zebra gallops over the moon'), ['zebra', 'gallops', 'moon']);
});

test(
  'kinema generate "<prompt>" with no flags writes a playable 16-frame 64×64 MP4 from models/default',
  { skip: SKIP },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kinema-gen-default-'));
    try {
      const r = kinema(dir, ['generate', 'a red circle moves left on a blue background']);
      assert.equal(r.status, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /never saw/, 'every word of this prompt is in the training vocabulary');
      const { info, frames } = await readAllFrames(join(dir, 'out.mp4'));
      assert.equal(frames.length, 16);
      assert.equal(info.width, 64);
      assert.equal(info.height, 64);
      // Not a blank or frozen video: pixels vary within the first frame and between the first and last.
      const first = frames[0]!;
      const last = frames.at(-1)!;
      let spread = 0;
      let change = 0;
      for (let i = 0; i < first.length; i++) {
        spread = Math.max(spread, Math.abs(first[i]! - first[0]!));
        change += Math.abs(first[i]! - last[i]!);
      }
      assert.ok(spread > 30, `the first frame should show something, max deviation ${spread}`);
      assert.ok(change > 0, 'the video should not be frozen');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('kinema generate names the words the default model never saw', { skip: SKIP }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-gen-default-'));
  try {
    const r = kinema(dir, [
      'generate',
      'a red zebra moves left',
      '--frames',
      '2',
      '--steps',
      '1',
      '-o',
      'z.mp4',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /never saw this word in training: "zebra"/);
    assert.ok(existsSync(join(dir, 'z.mp4')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
