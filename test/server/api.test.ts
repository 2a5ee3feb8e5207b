// The HTTP API in-process (createServer): validation and refusals with named fields, a real job on the shipped
// default model (2 steps), SSE with Last-Event-ID resume, Range requests, list paging, cancel and delete.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from '../../src/server/app.js';
import type { KinemaServer } from '../../src/server/app.js';
import { parseRange } from '../../src/server/content.js';
import { readAllFrames } from '../../src/io/video/index.js';
import { getJson, postJson, readSse, waitUntil } from './helpers.js';

const PROMPT = 'a red circle moves left on a blue background';
let dir: string;
let server: KinemaServer;
let url: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kinema-api-'));
  server = await createServer({ dataDir: dir, port: 0, previewEvery: 1, limits: { maxActivePerClient: 4 } });
  url = await server.listen();
});

after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function refusal(body: unknown) {
  const r = await postJson(`${url}/v1/videos`, body);
  return { status: r.status, ...(r.body['error'] as { code: string; field: string; message: string }) };
}

test('every refused request is a 4xx whose JSON body names the field', async () => {
  assert.deepEqual(
    (({ status, field }) => ({ status, field }))(await refusal({ prompt: PROMPT, frames: -5 })),
    { status: 400, field: 'frames' },
  );
  const model = await refusal({ prompt: PROMPT, model: '../../etc' });
  assert.equal(model.status, 400);
  assert.equal(model.field, 'model');
  const unknownModel = await refusal({ prompt: PROMPT, model: 'nope' });
  assert.deepEqual(
    [unknownModel.status, unknownModel.field, unknownModel.code],
    [400, 'model', 'SERVER_UNKNOWN_MODEL'],
  );
  assert.equal((await refusal({})).field, 'prompt');
  assert.equal((await refusal({ prompt: '   ' })).field, 'prompt');
  assert.equal((await refusal({ prompt: 'x'.repeat(1001) })).field, 'prompt');
  assert.equal((await refusal({ prompt: PROMPT, width: 63 })).field, 'width');
  assert.equal((await refusal({ prompt: PROMPT, format: 'exe' })).field, 'format');
  assert.equal((await refusal({ prompt: PROMPT, colour: 'red' })).field, 'colour');
  const big = await refusal({ prompt: PROMPT, frames: 64, width: 512, height: 512 });
  assert.deepEqual([big.status, big.code, big.field], [400, 'SERVER_VIDEO_TOO_LARGE', 'frames']);
  for (const field of ['lora', 'image', 'long']) {
    const r = await refusal({ prompt: PROMPT, [field]: 'x' });
    assert.deepEqual(
      [r.status, r.field, r.message],
      [400, field, `${field}: not supported by this server yet`],
    );
  }
  const traversal = await getJson(`${url}/v1/videos/..%2F..%2Fetc%2Fpasswd`);
  assert.equal(traversal.status, 400);
  assert.equal((traversal.body['error'] as { field: string }).field, 'id');
  const missing = await getJson(`${url}/v1/videos/v_doesnotexist`);
  assert.deepEqual([missing.status, (missing.body['error'] as { field: string }).field], [404, 'id']);
  const huge = await fetch(`${url}/v1/videos`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'x'.repeat(100_000) }),
  });
  assert.equal(huge.status, 413);
  assert.equal(((await huge.json()) as { error: { field: string } }).error.field, 'body');
  const badJson = await fetch(`${url}/v1/videos`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{',
  });
  assert.equal(badJson.status, 400);
  assert.equal(((await badJson.json()) as { error: { field: string } }).error.field, 'body');
  const badList = await getJson(`${url}/v1/videos?limit=0`);
  assert.deepEqual([badList.status, (badList.body['error'] as { field: string }).field], [400, 'limit']);
  // Nothing of the above reached the queue.
  assert.equal(((await getJson(`${url}/v1/videos`)).body['items'] as unknown[]).length, 0);
});

test('/v1/models lists ids only, /openapi.json describes the API, /healthz answers', async () => {
  const models = await getJson(`${url}/v1/models`);
  assert.deepEqual(models.body['data'], [{ id: 'default', object: 'model' }]);
  assert.ok(!JSON.stringify(models.body).includes('/'), 'no path in the model list');
  const doc = (await getJson(`${url}/openapi.json`)).body;
  assert.equal(doc['openapi'], '3.1.0');
  assert.ok('/v1/videos/{id}/events' in (doc['paths'] as object));
  assert.equal((await getJson(`${url}/healthz`)).body['ok'], true);
  const page = await fetch(`${url}/`);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  const js = await fetch(`${url}/app.js`);
  assert.match(await js.text(), /EventSource/);
});

test('a job runs to a 16-frame video; SSE resumes after Last-Event-ID; Range serves byte slices', async () => {
  const sub = await postJson(`${url}/v1/videos`, { prompt: PROMPT, steps: 2, seed: 1 });
  assert.equal(sub.status, 202);
  assert.equal(sub.body['status'], 'queued');
  const id = sub.body['id'] as string;
  const all = await readSse(`${url}/v1/videos/${id}/events`);
  const types = all.filter((e) => e.id !== null).map((e) => e.event);
  assert.deepEqual(types, ['queued', 'started', 'step', 'preview', 'step', 'preview', 'done']);
  const preview = all.find((e) => e.event === 'preview')!.data['image'] as string;
  assert.match(preview, /^data:image\/png;base64,/);
  // Resume from the third event: exactly the rest, same ids.
  const third = all.filter((e) => e.id !== null)[2]!;
  const rest = await readSse(`${url}/v1/videos/${id}/events`, { lastEventId: third.id! });
  assert.deepEqual(
    rest.map((e) => e.id),
    all.filter((e) => e.id !== null && Number(e.id) > Number(third.id)).map((e) => e.id),
  );
  const job = (await getJson(`${url}/v1/videos/${id}`)).body;
  assert.equal(job['status'], 'succeeded');
  assert.deepEqual(job['progress'], { step: 2, total: 2 });
  const full = await fetch(`${url}/v1/videos/${id}/content`);
  assert.equal(full.headers.get('content-type'), 'video/mp4');
  const bytes = Buffer.from(await full.arrayBuffer());
  const part = await fetch(`${url}/v1/videos/${id}/content`, { headers: { range: 'bytes=10-19' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 10-19/${bytes.length}`);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(10, 20));
  const beyond = await fetch(`${url}/v1/videos/${id}/content`, {
    headers: { range: `bytes=${bytes.length}-` },
  });
  assert.equal(beyond.status, 416);
  const frames = await readAllFrames(join(dir, 'videos', `${id}.mp4`));
  assert.equal(frames.frames.length, 16);
});

test('DELETE cancels a running job within a step, cancels a queued one, deletes a finished one with its file', async () => {
  const long = (await postJson(`${url}/v1/videos`, { prompt: PROMPT, steps: 100 })).body['id'] as string;
  const queued = (await postJson(`${url}/v1/videos`, { prompt: PROMPT, steps: 2 })).body['id'] as string;
  await waitUntil('the long job to step', async () => {
    const j = (await getJson(`${url}/v1/videos/${long}`)).body;
    return (j['progress'] as { step: number }).step >= 1;
  });
  const notReady = await getJson(`${url}/v1/videos/${long}/content`);
  assert.equal(notReady.status, 409);
  const q = await fetch(`${url}/v1/videos/${queued}`, { method: 'DELETE' });
  assert.deepEqual([q.status, ((await q.json()) as { status: string }).status], [200, 'cancelled']);
  const r = await fetch(`${url}/v1/videos/${long}`, { method: 'DELETE' });
  assert.equal(r.status, 202);
  const events = await readSse(`${url}/v1/videos/${long}/events`);
  assert.equal(events.at(-1)!.event, 'cancelled');
  const job = (await getJson(`${url}/v1/videos/${long}`)).body;
  assert.equal(job['status'], 'cancelled');
  assert.ok((job['progress'] as { step: number }).step < 100);
  assert.equal((await getJson(`${url}/v1/videos/${queued}`)).body['status'], 'cancelled');
  // Finished jobs: DELETE removes the record and the file.
  const list = (await getJson(`${url}/v1/videos?status=succeeded`)).body['items'] as { id: string }[];
  assert.equal(list.length, 1);
  const del = await fetch(`${url}/v1/videos/${list[0]!.id}`, { method: 'DELETE' });
  assert.equal(del.status, 204);
  assert.equal((await getJson(`${url}/v1/videos/${list[0]!.id}`)).status, 404);
  assert.ok(!readdirSync(join(dir, 'videos')).some((f) => f.startsWith(list[0]!.id)));
});

test('the list pages with a cursor, newest first', async () => {
  const page1 = (await getJson(`${url}/v1/videos?limit=1`)).body;
  const items1 = page1['items'] as { id: string }[];
  assert.equal(items1.length, 1);
  assert.equal(typeof page1['next_cursor'], 'string');
  const page2 = (await getJson(`${url}/v1/videos?limit=1&cursor=${String(page1['next_cursor'])}`)).body;
  const items2 = page2['items'] as { id: string }[];
  assert.equal(items2.length, 1);
  assert.notEqual(items2[0]!.id, items1[0]!.id);
});

test('parseRange: start-end, open end, suffix, unsatisfiable', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), [0, 9]);
  assert.deepEqual(parseRange('bytes=90-', 100), [90, 99]);
  assert.deepEqual(parseRange('bytes=-10', 100), [90, 99]);
  assert.deepEqual(parseRange('bytes=50-500', 100), [50, 99]);
  assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=5-2', 100), 'unsatisfiable');
  assert.equal(parseRange(undefined, 100), null);
  assert.equal(parseRange('items=1-2', 100), null);
});

test('with a token every request needs it; without one a non-loopback host is refused', async () => {
  await assert.rejects(
    createServer({ dataDir: join(dir, 'x'), host: '0.0.0.0', port: 0 }),
    (e: Error & { code?: string }) =>
      e.code === 'SERVER_TOKEN_REQUIRED' && /--host 0\.0\.0\.0/.test(e.message),
  );
  const secured = await createServer({
    dataDir: join(dir, 'tok'),
    port: 0,
    token: 's3cret',
    limits: { maxActivePerClient: 1 },
  });
  const base = await secured.listen();
  try {
    const none = await getJson(`${base}/v1/models`);
    assert.deepEqual([none.status, (none.body['error'] as { field: string }).field], [401, 'authorization']);
    assert.equal((await getJson(`${base}/healthz`, { authorization: 'Bearer wrong' })).status, 403);
    assert.equal((await getJson(`${base}/v1/models`, { authorization: 'Bearer s3cret' })).status, 200);
    assert.equal((await getJson(`${base}/v1/models?access_token=s3cret`)).status, 200);
    assert.equal((await fetch(`${base}/`)).status, 401);
    // One job queued or running per client here: the second is refused until the first finishes.
    const auth = { authorization: 'Bearer s3cret' };
    assert.equal((await postJson(`${base}/v1/videos`, { prompt: PROMPT, steps: 100 }, auth)).status, 202);
    const second = await postJson(`${base}/v1/videos`, { prompt: PROMPT, steps: 2 }, auth);
    assert.equal(second.status, 429);
    assert.equal((second.body['error'] as { code: string }).code, 'SERVER_CLIENT_QUEUE_FULL');
  } finally {
    await secured.close();
  }
});
