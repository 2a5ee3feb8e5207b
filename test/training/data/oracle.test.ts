import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  COLOURS,
  SHAPES,
  backgroundColours,
  canonicalCaption,
  renderVideo,
  worldSample,
  type MotionName,
  type ObjectSpec,
  type SceneSpec,
} from '../../../src/training/data/world.js';
import { scoreVideo } from '../../../src/training/data/oracle.js';

const W = 64;
const opts = { width: W, height: W, frames: 16 };
const FIELDS = ['colour', 'shape', 'motion', 'size'] as const;

test('the oracle scores the ground truth of 200 random scenes ≥ 95% correct on every attribute', () => {
  const correct = { colour: 0, shape: 0, motion: 0, size: 0 };
  const N = 200;
  for (let i = 0; i < N; i++) {
    const s = worldSample(777, i, opts);
    const score = scoreVideo(s.frames, W, W, canonicalCaption(s.scene));
    for (const f of FIELDS) if (score[f] === true) correct[f]++;
  }
  for (const f of FIELDS) assert.ok(correct[f] >= 0.95 * N, `${f}: ${correct[f]} / ${N}`);
});

const OPPOSITE: Record<MotionName, MotionName> = {
  left: 'right',
  right: 'left',
  up: 'down',
  down: 'up',
  'up-left': 'down-right',
  'down-right': 'up-left',
  'up-right': 'down-left',
  'down-left': 'up-right',
  grow: 'shrink',
  shrink: 'grow',
  bounce: 'orbit',
  orbit: 'bounce',
  rotate: 'left',
};

test('wrong prompts are rejected: another colour, shape, size or motion', () => {
  const rejected = { colour: 0, shape: 0, motion: 0, size: 0 };
  const tried = { colour: 0, shape: 0, motion: 0, size: 0 };
  for (let i = 0; i < 120; i++) {
    const s = worldSample(4242, i, opts);
    const o = s.scene.objects[0]!;
    const withFirst = (patch: Partial<ObjectSpec>): SceneSpec => ({
      ...s.scene,
      objects: [{ ...o, ...patch }, ...s.scene.objects.slice(1)],
    });
    const shown = new Set([
      ...s.scene.objects.map((x) => x.colour),
      ...backgroundColours(s.scene.background),
    ]);
    const wrong: [(typeof FIELDS)[number], SceneSpec][] = [
      ['shape', withFirst({ shape: SHAPES[(SHAPES.indexOf(o.shape) + 1 + (i % 5)) % 6]! })],
      ['motion', withFirst({ motion: OPPOSITE[o.motion] })],
      ['size', withFirst({ size: o.size === 'small' ? 'large' : 'small' })],
    ];
    const colour = COLOURS[(COLOURS.indexOf(o.colour) + 1 + (i % 9)) % 10]!;
    if (!shown.has(colour)) wrong.push(['colour', withFirst({ colour })]);
    for (const [field, scene] of wrong) {
      tried[field]++;
      if (scoreVideo(s.frames, W, W, canonicalCaption(scene))[field] === false) rejected[field]++;
    }
  }
  for (const f of FIELDS)
    assert.ok(rejected[f] >= 0.95 * tried[f], `${f}: rejected ${rejected[f]} / ${tried[f]}`);
});

test('a known scene: swapping colour or direction fails, unsaid attributes are null', () => {
  const scene: SceneSpec = {
    objects: [
      { shape: 'triangle', colour: 'red', size: 'large', motion: 'left', speed: 'slow', start: [0.6, 0.5] },
    ],
    background: { kind: 'solid', colour: 'blue' },
    cameraPan: null,
  };
  const frames = renderVideo(scene, opts);
  const truth = scoreVideo(frames, W, W, 'a large red triangle moves left slowly on a blue background');
  assert.deepEqual([truth.colour, truth.shape, truth.motion, truth.size], [true, true, true, true]);
  const paraphrase = scoreVideo(frames, W, W, 'a big red triangular shape drifting to the left over blue');
  assert.deepEqual(
    [paraphrase.colour, paraphrase.shape, paraphrase.motion, paraphrase.size],
    [true, true, true, true],
  );
  assert.equal(scoreVideo(frames, W, W, 'a green triangle moves left').colour, false);
  assert.equal(
    scoreVideo(frames, W, W, 'a green triangle moves left').motion,
    false,
    'absent object: its motion fails',
  );
  assert.equal(
    scoreVideo(frames, W, W, 'a purple triangle moves left on blue').colour,
    false,
    'red/blue edge blend',
  );
  assert.equal(scoreVideo(frames, W, W, 'a red triangle moves right').motion, false);
  assert.equal(scoreVideo(frames, W, W, 'a red triangle moves up-left').motion, false);
  assert.equal(scoreVideo(frames, W, W, 'a red triangle rotates').motion, false);
  assert.equal(
    scoreVideo(frames, W, W, 'a blue circle on a blue background').colour,
    false,
    'the background is no object',
  );
  const partial = scoreVideo(frames, W, W, 'a red shape');
  assert.deepEqual([partial.colour, partial.shape, partial.motion, partial.size], [true, null, null, null]);
  const none = scoreVideo(frames, W, W, 'a beautiful sunset');
  assert.deepEqual([none.colour, none.shape, none.motion, none.size], [null, null, null, null]);
});

test('two objects are scored together; a still image scores shape but fails motion', () => {
  const scene: SceneSpec = {
    objects: [
      { shape: 'ring', colour: 'yellow', size: 'large', motion: 'grow', speed: 'fast', start: [0.3, 0.3] },
      { shape: 'star', colour: 'white', size: 'small', motion: 'rotate', speed: 'slow', start: [0.75, 0.75] },
    ],
    background: { kind: 'checker', a: 'black', b: 'purple', period: 16 },
    cameraPan: 'right',
  };
  const frames = renderVideo(scene, opts);
  const ok = scoreVideo(frames, W, W, canonicalCaption(scene));
  assert.deepEqual([ok.colour, ok.shape, ok.motion, ok.size], [true, true, true, true]);
  const swapped = scoreVideo(
    frames,
    W,
    W,
    'a large yellow ring shrinks and a small white star rotates on a checkerboard',
  );
  assert.deepEqual([swapped.colour, swapped.shape, swapped.motion], [true, true, false]);
  const image = renderVideo(scene, { ...opts, frames: 1 });
  const still = scoreVideo(image, W, W, canonicalCaption(scene, { still: true }));
  assert.deepEqual([still.colour, still.shape, still.motion, still.size], [true, true, null, true]);
  assert.equal(scoreVideo(image, W, W, canonicalCaption(scene)).motion, false);
});

test('scoreVideo rejects malformed input', () => {
  const frames = renderVideo(
    {
      objects: [
        { shape: 'circle', colour: 'red', size: 'small', motion: 'up', speed: 'fast', start: [0.5, 0.7] },
      ],
      background: { kind: 'solid', colour: 'white' },
      cameraPan: null,
    },
    opts,
  );
  assert.throws(() => scoreVideo(frames, 32, 64, 'a red circle'), /frame 0 has 12288 bytes, expected 6144/);
  assert.throws(() => scoreVideo([], W, W, 'a red circle'), /no frames/);
  assert.throws(() => scoreVideo(frames, 0, W, 'a red circle'), /width and height must be integers/);
});
