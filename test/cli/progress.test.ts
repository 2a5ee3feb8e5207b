import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, Progress } from '../../src/cli/progress.js';

function fakeStream(isTTY: boolean): {
  write(s: string): boolean;
  isTTY: boolean;
  columns: number;
  text: string;
} {
  return {
    isTTY,
    columns: 100,
    text: '',
    write(s: string): boolean {
      this.text += s;
      return true;
    },
  };
}

test('formatDuration', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(75.4), '1:15');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(NaN), '?');
});

test('TTY mode redraws one line in place (throttled) with bar, count, rate and ETA', () => {
  let now = 0;
  const s = fakeStream(true);
  const p = new Progress({ label: 'clip.mp4', total: 100, unit: 'frames', stream: s, now: () => now });
  now = 1000;
  p.tick(10); // drawn (first draw)
  now = 1050;
  p.tick(10); // throttled (< 100 ms since the last draw)
  now = 2000;
  p.tick(20); // drawn: 40 frames in 2 s = 20 frames/s, 60 left -> ETA 0:03
  assert.equal(s.text.split('\r').length - 1, 2);
  assert.match(s.text, /\r\x1b\[Kclip\.mp4 \[#+-+\] 40\/100 40% 20\.0 frames\/s ETA 0:03$/);
  p.finish();
  assert.match(s.text, /\r\x1b\[Kclip\.mp4: 40 frames in 0:02 \(20\.0 frames\/s\)\n$/);
});

test('plain mode prints an occasional line and a final summary; unknown totals have no ETA', () => {
  let now = 0;
  const s = fakeStream(false);
  const p = new Progress({ label: 'job', unit: 'frames', stream: s, now: () => now, plainIntervalMs: 5000 });
  for (let i = 1; i <= 10; i++) {
    now = i * 1000;
    p.tick();
  }
  assert.equal(s.text, 'job 5 frames 1.00 frames/s\njob 10 frames 1.00 frames/s\n');
  p.setTotal(20);
  assert.equal(p.status(10_000), 'job: 10/20 frames (50%) 1.00 frames/s, ETA 0:10');
  p.finish('done');
  assert.match(s.text, /job: 10 frames in 0:10 \(1\.00 frames\/s\) done\n$/);
  p.finish();
  assert.equal(s.text.split('\n').length, 4);
});

test('a terminal reporting 0 columns gets a plain, uncut line per step (no redraw)', () => {
  let now = 0;
  const s = { ...fakeStream(true), columns: 0 };
  const p = new Progress({ label: 'clip.mp4', total: 3, unit: 'frames', stream: s, now: () => now });
  for (let i = 1; i <= 3; i++) {
    now = i * 1000;
    p.tick();
  }
  p.finish();
  assert.doesNotMatch(s.text, /\r|\x1b/);
  assert.deepEqual(s.text.trimEnd().split('\n'), [
    'clip.mp4: 1/3 frames (33%) 1.00 frames/s, ETA 0:02',
    'clip.mp4: 2/3 frames (66%) 1.00 frames/s, ETA 0:01',
    'clip.mp4: 3/3 frames (100%) 1.00 frames/s, ETA 0:00',
    'clip.mp4: 3 frames in 0:03 (1.00 frames/s)',
  ]);
});
