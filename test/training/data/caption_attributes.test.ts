// Caption attribute targets: what each paraphrase names becomes one one-hot row per group; what it leaves
// out stays zero; the groups tile the row exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CAPTION_ATTRIBUTE_CLASSES,
  CAPTION_ATTRIBUTE_GROUPS,
  captionAttributeTargets,
} from '../../../src/training/data/caption_attributes.js';
import { worldSample } from '../../../src/training/data/world.js';

/** The row as "group=class" strings. */
function named(caption: string): string[] {
  const row = captionAttributeTargets(caption);
  return CAPTION_ATTRIBUTE_GROUPS.flatMap((g) =>
    g.classes.filter((_, i) => row[g.offset + i] === 1).map((c) => `${g.name}=${c}`),
  );
}

test('caption attributes: groups tile the targets row', () => {
  let at = 0;
  for (const g of CAPTION_ATTRIBUTE_GROUPS) {
    assert.equal(g.offset, at, g.name);
    at += g.classes.length;
  }
  assert.equal(at, CAPTION_ATTRIBUTE_CLASSES);
  // 2 objects × (6 shapes + 10 colours + 2 sizes + 13 motions + 2 speeds) + 2 counts + 10 backgrounds + 3 pans
  assert.equal(CAPTION_ATTRIBUTE_CLASSES, 81);
});

test('caption attributes: paraphrases name the same classes; unnamed groups stay zero', () => {
  const plain = [
    'object1.shape=circle',
    'object1.colour=red',
    'object1.motion=left',
    'objects=1',
    'background=blue',
    'camera=none',
  ];
  assert.deepEqual(named('a red circle moves left on a blue background'), plain);
  assert.deepEqual(named('a red ball drifting to the left over blue'), plain);
  assert.deepEqual(
    named(
      'the large pink star slides down-right slowly and a small cyan ring rotates over white, as the camera pans left',
    ),
    [
      'object1.shape=star',
      'object1.colour=pink',
      'object1.size=large',
      'object1.motion=down-right',
      'object1.speed=slow',
      'object2.shape=ring',
      'object2.colour=cyan',
      'object2.size=small',
      'object2.motion=rotate',
      'objects=2',
      'background=white',
      'camera=left',
    ],
  );
  assert.deepEqual(named('a tiny cyan dot on orange'), [
    'object1.shape=circle',
    'object1.colour=cyan',
    'object1.size=small',
    'objects=1',
    'background=orange',
    'camera=none',
  ]);
  assert.equal(
    captionAttributeTargets('').reduce((a, b) => a + b, 0),
    0,
  );
  assert.equal(
    captionAttributeTargets('a photo of a cat').reduce((a, b) => a + b, 0),
    0,
  );
});

test('caption attributes: every world caption names its objects, at most one class per group', () => {
  for (let i = 0; i < 200; i++) {
    const { caption, scene } = worldSample(0, i, { width: 8, height: 8, frames: 1, imageMode: i % 4 === 3 });
    const row = captionAttributeTargets(caption);
    for (const g of CAPTION_ATTRIBUTE_GROUPS) {
      const hits = row.subarray(g.offset, g.offset + g.classes.length).reduce((a, b) => a + b, 0);
      assert.ok(hits <= 1, `${caption}: ${g.name}`);
    }
    const names = named(caption);
    assert.ok(names.includes(`objects=${scene.objects.length}`), caption);
    assert.ok(names.includes(`object1.colour=${scene.objects[0]!.colour}`), caption);
  }
});
