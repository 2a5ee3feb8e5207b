import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator } from '../../../src/engine/random.js';
import {
  backgroundColours,
  canonicalCaption,
  captionOf,
  sampleScene,
  staticCaptionOf,
  vocabularyWords,
  type SceneSpec,
} from '../../../src/training/data/world.js';
import { parsePrompt, type ParsedPrompt } from '../../../src/training/data/captions.js';

function assertParsesBack(scene: SceneSpec, caption: string, parsed: ParsedPrompt, still: boolean): void {
  assert.deepEqual(parsed.unknownWords, [], caption);
  assert.equal(parsed.objects.length, scene.objects.length, caption);
  scene.objects.forEach((o, i) => {
    const p = parsed.objects[i]!;
    assert.equal(p.shape, o.shape, caption);
    assert.equal(p.colour, o.colour, caption);
    if (p.size !== undefined) assert.equal(p.size, o.size, caption);
    if (still) assert.equal(p.motion, undefined, caption);
    else {
      assert.equal(p.motion, o.motion, caption);
      if (p.speed !== undefined) assert.equal(p.speed, o.speed, caption);
    }
  });
  assert.deepEqual(parsed.backgroundColours, backgroundColours(scene.background), caption);
  assert.equal(parsed.background, backgroundColours(scene.background)[0], caption);
  assert.equal(parsed.backgroundKind, scene.background.kind, caption);
  assert.equal(parsed.cameraPan, still ? null : scene.cameraPan, caption);
}

test('canonical captions are the plain form and name every attribute', () => {
  const scene: SceneSpec = {
    objects: [
      { shape: 'circle', colour: 'red', size: 'small', motion: 'left', speed: 'slow', start: [0.5, 0.5] },
    ],
    background: { kind: 'solid', colour: 'blue' },
    cameraPan: null,
  };
  assert.equal(canonicalCaption(scene), 'a small red circle moves left slowly on a blue background');
  assert.equal(canonicalCaption(scene, { still: true }), 'a small red circle on a blue background');
  const two: SceneSpec = {
    objects: [
      { ...scene.objects[0]!, colour: 'orange', motion: 'up-right', speed: 'fast', size: 'large' },
      { shape: 'star', colour: 'white', size: 'small', motion: 'orbit', speed: 'slow', start: [0.2, 0.2] },
    ],
    background: { kind: 'stripes', a: 'black', b: 'blue', period: 16 },
    cameraPan: 'left',
  };
  assert.equal(
    canonicalCaption(two),
    'a large orange circle moves up-right quickly and a small white star orbits slowly on black and blue stripes, ' +
      'while the camera pans left',
  );
  for (const [s, still] of [
    [scene, false],
    [scene, true],
    [two, false],
  ] as const) {
    const text = canonicalCaption(s, { still });
    const p = parsePrompt(text);
    assertParsesBack(s, text, p, still);
    p.objects.forEach((o, i) => {
      assert.equal(o.size, s.objects[i]!.size);
      if (!still) assert.equal(o.speed, s.objects[i]!.speed);
    });
  }
});

test('every paraphrase the grammar produces parses back to its scene, with no unknown words', () => {
  const rng = new Generator(2024);
  const used = new Set<string>();
  for (let i = 0; i < 4000; i++) {
    const scene = sampleScene(rng, { split: 'any' });
    const video = captionOf(scene, rng);
    const still = staticCaptionOf(scene, rng);
    assertParsesBack(scene, video, parsePrompt(video), false);
    assertParsesBack(scene, still, parsePrompt(still), true);
    for (const w of `${video} ${still}`.match(/[a-z]+/g)!) used.add(w);
  }
  const vocabulary = vocabularyWords();
  assert.deepEqual(
    [...vocabulary].filter((w) => !used.has(w)),
    [],
    'every vocabulary word is produced',
  );
  assert.deepEqual(
    [...used].filter((w) => !vocabulary.has(w)),
    [],
    'every produced word is in the vocabulary',
  );
});

test('hand-written paraphrases parse; unknown words are listed', () => {
  const p = parsePrompt('a red ball drifting to the left over blue');
  assert.deepEqual(p.objects, [{ shape: 'circle', colour: 'red', motion: 'left' }]);
  assert.equal(p.background, 'blue');
  assert.deepEqual(p.unknownWords, []);
  const q = parsePrompt('On a plain yellow background, the huge pink hoop quickly spins in place.');
  assert.deepEqual(q.objects, [
    { shape: 'ring', colour: 'pink', size: 'large', speed: 'fast', motion: 'rotate' },
  ]);
  assert.equal(q.background, 'yellow');
  const r = parsePrompt(
    'a tiny cyan plus sign bounces up and down while a big black box travels toward the lower right ' +
      'over a gradient from white to orange as the camera pans to the right',
  );
  assert.deepEqual(r.objects, [
    { shape: 'cross', colour: 'cyan', size: 'small', motion: 'bounce' },
    { shape: 'square', colour: 'black', size: 'large', motion: 'down-right' },
  ]);
  assert.deepEqual(r.backgroundColours, ['white', 'orange']);
  assert.equal(r.backgroundKind, 'gradient');
  assert.equal(r.cameraPan, 'right');
  const u = parsePrompt('a magenta hexagon zooms left on a blue background');
  assert.deepEqual(u.unknownWords, ['magenta', 'hexagon', 'zooms']);
  assert.deepEqual(u.objects, [{ motion: 'left' }]);
  assert.deepEqual(parsePrompt('').objects, []);
  assert.throws(() => parsePrompt(3 as unknown as string), /prompt must be a string/);
});

test('the vocabulary holds the grammar words and not others', () => {
  const v = vocabularyWords();
  for (const w of [
    'circle',
    'ball',
    'disc',
    'square',
    'box',
    'moves',
    'drifts',
    'slides',
    'glides',
    'travels',
  ]) {
    assert.ok(v.has(w), w);
  }
  for (const w of ['purple', 'orbits', 'checkerboard', 'gradient', 'camera', 'pans', 'slowly', 'quickly']) {
    assert.ok(v.has(w), w);
  }
  for (const w of ['magenta', 'hexagon', 'zooms', 'dog']) assert.ok(!v.has(w), w);
  v.add('mutated');
  assert.ok(!vocabularyWords().has('mutated'), 'returns a copy');
});
