// Scale-out on BullMQ with a real redis-server: the server queues, two `kinema worker`s run jobs and upload the
// results over HTTP. One worker is killed with SIGKILL mid-job; BullMQ's stalled-job check hands the job to
// the other, which finishes it; the gallery then holds every submitted job exactly once, all succeeded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAllFrames } from '../../src/io/video/index.js';
import { getJson, killHard, postJson, readSse, startKinema, startServer, waitUntil } from './helpers.js';
import type { Child } from './helpers.js';

const HAS_REDIS = spawnSync('redis-server', ['--version']).status === 0;
const SKIP = HAS_REDIS ? false : 'redis-server is not installed (scripts/install-redis.sh installs it)';
if (SKIP) console.log(`# skipping the BullMQ tests: ${SKIP}`);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<{ proc: ChildProcess; url: string }> {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/Ready to accept connections/.test(out)) resolve();
    });
    proc.once('exit', () => reject(new Error(`redis-server exited: ${out}`)));
  });
  return { proc, url: `redis://127.0.0.1:${port}` };
}

const PROMPT = 'a blue square moves up on a white background';

test(
  'BullMQ: a worker killed with SIGKILL mid-job; the other finishes it; nothing lost or duplicated',
  { skip: SKIP },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kinema-redis-'));
    const redis = await startRedis();
    const children: Child[] = [];
    try {
      const server = await startServer(['--data', dir, '--queue', redis.url, '--preview-every', '4']);
      children.push(server);
      const workerArgs = ['worker', '--queue', redis.url, '--lock-ms', '3000', '--preview-every', '4'];
      const a = startKinema(workerArgs);
      const b = startKinema(workerArgs);
      children.push(a, b);
      await Promise.all([a.waitForOutput(/waiting for jobs/), b.waitForOutput(/waiting for jobs/)]);
      const health = (await getJson(`${server.url}/healthz`)).body;
      assert.equal(health['queue'], 'redis');

      // Two jobs: one for each worker. The one that worker A takes is the one whose worker dies.
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await postJson(`${server.url}/v1/videos`, { prompt: PROMPT, steps: 10, seed: i });
        assert.equal(r.status, 202);
        ids.push(r.body['id'] as string);
      }
      const taken = await a.waitForOutput(/running (v_\S+)/);
      const victim = taken[1]!;
      assert.ok(ids.includes(victim));
      // Progress from the worker reaches the server's SSE stream.
      const seen = await readSse(`${server.url}/v1/videos/${victim}/events`, {
        stop: (e) => e.event === 'step' && Number(e.data['step']) >= 2,
      });
      assert.ok(seen.some((e) => e.event === 'step'));
      await killHard(a);

      const events = await readSse(`${server.url}/v1/videos/${victim}/events`, {
        lastEventId: seen.filter((e) => e.id !== null).at(-1)!.id!,
      });
      const types = events.filter((e) => e.id !== null).map((e) => e.event);
      assert.ok(types.includes('requeued'), `the stalled job is re-queued (events: ${types.join(', ')})`);
      assert.equal(types.at(-1), 'done');
      for (const id of ids)
        await waitUntil(
          `job ${id} to succeed`,
          async () => (await getJson(`${server.url}/v1/videos/${id}`)).body['status'] === 'succeeded',
        );
      assert.match(b.output(), new RegExp(`running ${victim}`), 'the surviving worker ran the victim job');

      const gallery = (await getJson(`${server.url}/v1/videos?limit=50`)).body['items'] as {
        id: string;
        status: string;
      }[];
      assert.deepEqual(gallery.map((j) => j.id).sort(), [...ids].sort(), 'each job once, none lost');
      assert.ok(gallery.every((j) => j.status === 'succeeded'));
      for (const id of ids) {
        const res = await fetch(`${server.url}/v1/videos/${id}/content`);
        assert.equal(res.status, 200);
        const { frames } = await readAllFrames(join(dir, 'videos', `${id}.mp4`));
        assert.equal(frames.length, 16);
      }
    } finally {
      for (const c of children) await killHard(c);
      redis.proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
