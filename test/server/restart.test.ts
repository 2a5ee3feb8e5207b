// The durable queue: `kill -9` of `kinema serve` in the middle of a job loses nothing. After a restart on the
// same data folder the job runs again (at-least-once), succeeds, and its content is a whole 16-frame video; an
// SSE client that resumes with its Last-Event-ID sees the re-queue and the rest of the run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAllFrames } from '../../src/io/video/index.js';
import { getJson, killHard, postJson, readSse, startServer, waitUntil } from './helpers.js';

const PROMPT = 'a yellow star moves right on a checkered background';

test('SIGKILL of the server mid-job: after a restart the job finishes and its content is a 16-frame video', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-restart-'));
  const first = await startServer(['--data', dir, '--preview-every', '0']);
  let second: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    const sub = await postJson(`${first.url}/v1/videos`, { prompt: PROMPT, steps: 12, frames: 16 });
    assert.equal(sub.status, 202);
    const id = sub.body['id'] as string;
    // Follow the stream until step 3, remembering the last event id, then kill the server hard.
    const seen = await readSse(`${first.url}/v1/videos/${id}/events`, {
      stop: (e) => e.event === 'step' && Number(e.data['step']) >= 3,
    });
    await killHard(first);
    const lastId = seen.filter((e) => e.id !== null).at(-1)!.id!;
    assert.equal(seen.at(-1)!.event, 'step');

    second = await startServer(['--data', dir, '--preview-every', '0']);
    const rest = await readSse(`${second.url}/v1/videos/${id}/events`, { lastEventId: lastId });
    const types = rest.filter((e) => e.id !== null).map((e) => e.event);
    assert.equal(types[0], 'requeued');
    assert.equal(types.at(-1), 'done');
    assert.ok(
      Number(rest.find((e) => e.id !== null)!.id) === Number(lastId) + 1,
      'resumes right after the last id',
    );
    const job = await waitUntil('the job to succeed', async () => {
      const j = (await getJson(`${second!.url}/v1/videos/${id}`)).body;
      return j['status'] === 'succeeded' ? j : null;
    });
    assert.deepEqual(job['progress'], { step: 12, total: 12 });
    const res = await fetch(`${second.url}/v1/videos/${id}/content`);
    assert.equal(res.status, 200);
    const { frames, info } = await readAllFrames(join(dir, 'videos', `${id}.mp4`));
    assert.equal(frames.length, 16);
    assert.equal(info.width, 64);
    // No half-written temp file is left behind.
    assert.deepEqual(
      readdirSync(join(dir, 'videos')).filter((f) => f.includes('.partial')),
      [],
    );
  } finally {
    await killHard(first);
    if (second) await killHard(second);
    rmSync(dir, { recursive: true, force: true });
  }
});
