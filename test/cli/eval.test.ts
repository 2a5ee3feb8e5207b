import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeVideo } from '../../src/io/video/index.js';
import { evalCommand, expandInputs } from '../../src/cli/eval.js';
import { toJson } from '../../src/cli/eval_output.js';
import {
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  cosineSimilarity,
  type ClipEmbedder,
} from '../../src/metrics/clip_metrics.js';
import { panVideo, solidFrame, texture, rgbFrame } from '../metrics/synthetic.js';

const W = 64;
const H = 48;
let dir = '';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function kinema(...args: string[]): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'eval', ...args], {
    cwd: process.cwd(),
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface JsonVideo {
  path: string;
  frames: number;
  fps: number;
  width: number;
  height: number;
  scuts: number;
  cuts: number[];
  mawe: number | null;
  flow_smoothness: number | null;
  mean_flow_magnitude: number;
  flow_size: [number, number];
  clip_score: number | null;
  frame_consistency: number | null;
  per_frame: { adaptive_ratio: (number | null)[]; content_value: number[] };
  per_pair: { flow_magnitude: number[]; warp_error: number[] };
}

interface JsonDoc {
  videos: JsonVideo[];
  summary: Record<string, number | null> | null;
  errors: { path: string; message: string }[];
}

const readJson = (p: string): JsonDoc => JSON.parse(readFileSync(p, 'utf8')) as JsonDoc;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kinema-eval-'));
  // A slow diagonal pan (1.5, 0.5) px/frame.
  const pan = panVideo(
    W,
    H,
    Array.from({ length: 10 }, (_, t) => [1.5 * t, 0.5 * t] as [number, number]),
    3,
  );
  await writeVideo(join(dir, 'pan.mp4'), pan, { width: W, height: H, fps: 8 });
  // Two differently textured shots, each panning slowly: one hard cut at frame 20.
  const a = [0, 1, 2].map((c) => texture(W, H, 2.5, 10 + c));
  const b = [0, 1, 2].map((c) => texture(W, H, 2.5, 20 + c));
  const cut = Array.from({ length: 40 }, (_, t) => rgbFrame(t < 20 ? a : b, W, H, 0.5 * t, 0));
  await writeVideo(join(dir, 'cut.mp4'), cut, { width: W, height: H, fps: 10 });
  mkdirSync(join(dir, 'set'));
  await writeVideo(join(dir, 'set', 'one.webm'), pan.slice(0, 4), { width: W, height: H, fps: 8 });
  await writeVideo(join(dir, 'set', 'frames'), pan.slice(0, 5), {
    width: W,
    height: H,
    fps: 8,
    format: 'png',
  });
  writeFileSync(join(dir, 'list.txt'), '# videos to score\npan.mp4\n\nset/frames\n');
  await writeVideo(join(dir, 'single.mp4'), pan.slice(0, 1), { width: W, height: H, fps: 8 });
  writeFileSync(join(dir, 'empty.mp4'), new Uint8Array(0));
  const bytes = readFileSync(join(dir, 'pan.mp4'));
  writeFileSync(join(dir, 'truncated.mp4'), bytes.subarray(0, Math.floor(bytes.length / 2)));
  writeFileSync(
    join(dir, 'corrupt.mp4'),
    Uint8Array.from({ length: 4000 }, (_, i) => (i * 97 + 13) % 256),
  );
  // Lossless solid colours for the CLIP test: red, red, blue, blue.
  const colours: [number, number, number][] = [
    [255, 0, 0],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 255],
  ];
  await writeVideo(
    join(dir, 'solid'),
    colours.map((c) => solidFrame(32, 32, c)),
    { width: 32, height: 32, fps: 4, format: 'png' },
  );
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

test('eval prints per-video tables and a summary, and writes JSON with the metrics', () => {
  const json = join(dir, 'out.json');
  const r = kinema(join(dir, 'pan.mp4'), join(dir, 'cut.mp4'), '--flow-size', 'native', '--json', json);
  assert.equal(r.status, 0, r.stderr);
  for (const word of [
    'pan.mp4',
    'cut.mp4',
    'SCuts',
    'MAWE',
    'flow smoothness',
    'mean flow magnitude',
    'Summary',
    'mean (2 videos)',
  ]) {
    assert.ok(r.stdout.includes(word), `stdout lacks '${word}':\n${r.stdout}`);
  }
  const doc = readJson(json);
  assert.equal(doc.videos.length, 2);
  assert.deepEqual(doc.errors, []);
  const [pan, cut] = doc.videos;
  assert.equal(pan!.frames, 10);
  assert.equal(pan!.fps, 8);
  assert.deepEqual([pan!.width, pan!.height], [W, H]);
  assert.equal(pan!.scuts, 0);
  assert.deepEqual(pan!.flow_size, [W, H]);
  // The pan moves hypot(1.5, 0.5) = 1.58 px per frame (H.264 noise and the borders blur this a little).
  assert.ok(
    Math.abs(pan!.mean_flow_magnitude - Math.hypot(1.5, 0.5)) < 0.35,
    `flow ${pan!.mean_flow_magnitude}`,
  );
  assert.ok(
    pan!.mawe !== null && pan!.mawe > 0 && pan!.mawe < cut!.mawe!,
    `MAWE pan ${pan!.mawe} cut ${cut!.mawe}`,
  );
  assert.equal(pan!.per_frame.adaptive_ratio.length, 10);
  assert.equal(pan!.per_pair.flow_magnitude.length, 9);
  assert.equal(cut!.frames, 40);
  assert.deepEqual(cut!.cuts, [20]);
  assert.equal(cut!.scuts, 1);
  assert.equal(doc.summary!['videos'], 2);
  assert.equal(doc.summary!['scuts'], 0.5);
});

test('by default flow and MAWE are computed at 720x720 as in StreamingT2V', () => {
  const json = join(dir, 'out720.json');
  const r = kinema(join(dir, 'set', 'one.webm'), '--json', json, '--no-progress');
  assert.equal(r.status, 0, r.stderr);
  const v = readJson(json).videos[0]!;
  assert.deepEqual(v.flow_size, [720, 720]);
  // (1.5, 0.5) px at 64x48 is (16.9, 7.5) px at 720x720.
  const expected = Math.hypot((1.5 * 720) / W, (0.5 * 720) / H);
  assert.ok(Math.abs(v.mean_flow_magnitude - expected) < 3, `flow ${v.mean_flow_magnitude} vs ${expected}`);
  assert.equal(r.stderr, '');
});

test('inputs: PNG-frame folders, folders of videos and .txt lists', async () => {
  assert.deepEqual(await expandInputs([join(dir, 'list.txt')]), [
    join(dir, 'pan.mp4'),
    join(dir, 'set', 'frames'),
  ]);
  assert.deepEqual(await expandInputs([join(dir, 'set')]), [
    join(dir, 'set', 'frames'),
    join(dir, 'set', 'one.webm'),
  ]);
  const json = join(dir, 'set.json');
  const r = kinema(join(dir, 'set'), '--flow-size', '32', '--json', json, '--no-progress');
  assert.equal(r.status, 0, r.stderr);
  const doc = readJson(json);
  assert.deepEqual(
    doc.videos.map((v) => [v.frames, v.flow_size]),
    [
      [5, [32, 32]],
      [4, [32, 32]],
    ],
  );
});

test('--report writes one self-contained HTML file with contact sheets and SVG plots', () => {
  const html = join(dir, 'report.html');
  const r = kinema(
    join(dir, 'cut.mp4'),
    join(dir, 'pan.mp4'),
    '--flow-size',
    'native',
    '--report',
    html,
    '--thumbnails',
    '6',
  );
  assert.equal(r.status, 0, r.stderr);
  const text = readFileSync(html, 'utf8');
  assert.equal(text.match(/<img [^>]*src="data:image\/png;base64,/g)?.length, 2);
  assert.equal(text.match(/<svg /g)?.length, 4);
  assert.ok(
    text.includes('Scene-change score') &&
      text.includes('Optical-flow magnitude') &&
      text.includes('threshold 3'),
  );
  assert.ok(!/(src|href)="(https?:)?\/\//.test(text), 'no external resources');
  // Progress went to stderr (plain lines, stderr is not a TTY here).
  assert.match(r.stderr, /cut\.mp4: 40 frames in/);
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.endsWith('.partial')),
    [],
  );
});

test('bad inputs give clear errors and a non-zero exit', () => {
  const cases: [string, RegExp][] = [
    [join(dir, 'missing.mp4'), /cannot read '.*missing\.mp4': no such file or folder/],
    [join(dir, 'empty.mp4'), /empty\.mp4: file is empty/],
    [join(dir, 'corrupt.mp4'), /corrupt\.mp4: /],
    [join(dir, 'truncated.mp4'), /truncated\.mp4: /],
    [join(dir, 'single.mp4'), /single\.mp4: the video has only 1 frame/],
  ];
  for (const [path, message] of cases) {
    const r = kinema(path, '--flow-size', 'native', '--no-progress');
    assert.notEqual(r.status, 0, `${path} should fail`);
    assert.match(r.stderr, message);
  }
});

test('one failing video: the others are still scored and written, and the exit code is non-zero', () => {
  const json = join(dir, 'partial.json');
  const r = kinema(
    join(dir, 'pan.mp4'),
    join(dir, 'empty.mp4'),
    '--flow-size',
    'native',
    '--json',
    json,
    '--no-progress',
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /1 of 2 video\(s\) could not be evaluated/);
  const doc = readJson(json);
  assert.equal(doc.videos.length, 1);
  assert.equal(doc.errors.length, 1);
  assert.match(doc.errors[0]!.message, /empty\.mp4/);
});

test('--clip: a missing loader or an unloadable model folder fails clearly; bad option values are rejected', async () => {
  // In this process nothing registered a CLIP loader.
  const cmd = evalCommand({ stdout: { write: () => true }, stderr: { write: () => true } });
  await assert.rejects(
    cmd.parseAsync([join(dir, 'pan.mp4'), '--clip', dir, '--no-progress'], { from: 'user' }),
    /--clip: no CLIP model loader is registered/,
  );
  // The real CLI has one; a folder that is not a CLIP model is reported as such.
  const r = kinema(join(dir, 'pan.mp4'), '--clip', dir, '--no-progress');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--clip .*: cannot load the CLIP model/);
  const bad = kinema(join(dir, 'pan.mp4'), '--flow-size', '7x');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--flow-size <size>' argument '7x' is invalid/);
});

/** Fake CLIP: an image embeds to the per-channel mean of its normalised pixels; text "red" to (1, 0, 0). */
class FakeClip implements ClipEmbedder {
  async embedImages(pixels: Float32Array, count: number): Promise<Float32Array[]> {
    const per = pixels.length / count;
    return Array.from({ length: count }, (_, k) =>
      Float32Array.from([0, 1, 2], (c) => {
        let s = 0;
        for (let i = 0; i < per / 3; i++) s += pixels[k * per + (c * per) / 3 + i]!;
        return s / (per / 3);
      }),
    );
  }
  async embedText(text: string): Promise<Float32Array> {
    assert.equal(text, 'red');
    return Float32Array.from([1, 0, 0]);
  }
}

test('with a CLIP loader, eval reports CLIP score and frame consistency (hand-computed)', async () => {
  const json = join(dir, 'clip.json');
  let loadedFrom = '';
  let out = '';
  const cmd = evalCommand({
    clipLoader: async (d) => {
      loadedFrom = d;
      return new FakeClip();
    },
    stdout: { write: (s: string) => (out += s) },
  });
  await cmd.parseAsync(
    [join(dir, 'solid'), '--clip', dir, '--prompt', 'red', '--json', json, '--no-progress'],
    {
      from: 'user',
    },
  );
  assert.equal(loadedFrom, dir);
  assert.match(out, /CLIP score/);
  const v = readJson(json).videos[0]!;
  const emb = (rgb: number[]): number[] =>
    rgb.map((c, i) => (c / 255 - OPENAI_CLIP_MEAN[i]!) / OPENAI_CLIP_STD[i]!);
  const red = emb([255, 0, 0]);
  const blue = emb([0, 0, 255]);
  const text = [1, 0, 0];
  const score =
    (2 * Math.max(100 * cosineSimilarity(red, text), 0) +
      2 * Math.max(100 * cosineSimilarity(blue, text), 0)) /
    4;
  assert.ok(Math.abs(v.clip_score! - score) < 1e-3, `${v.clip_score} vs ${score}`);
  const consistency = (2 + cosineSimilarity(red, blue)) / 3;
  assert.ok(Math.abs(v.frame_consistency! - consistency) < 1e-5, `${v.frame_consistency} vs ${consistency}`);
});

test('toJson keeps scalar arrays on one line and encodes non-finite numbers', () => {
  assert.equal(
    toJson({ a: [1, null, NaN], b: { c: Infinity } }),
    '{\n  "a": [1, null, null],\n  "b": {\n    "c": "Infinity"\n  }\n}',
  );
});
