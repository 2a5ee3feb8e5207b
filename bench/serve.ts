// npm run bench:serve [-- --seconds 600 --clients 50 --config local|redis|both --steps 25]
// N concurrent clients, each submitting a job to `kinema serve` (default model) and following its SSE stream to
// the end, then the next, for a fixed time. Meanwhile GET /v1/videos/:id is timed every 200 ms and the RSS of
// the server (and workers) sampled every 5 s. At the deadline open jobs are cancelled, and every accepted id is
// checked: a job missing or failed counts as lost. Traffic goes to loopback only; the run stops by itself.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKinema, readSse, killHard } from '../test/server/helpers.js';
import type { Child } from '../test/server/helpers.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const SECONDS = Number(flag('seconds', '600'));
const CLIENTS = Number(flag('clients', '50'));
const STEPS = Number(flag('steps', '25'));
const CONFIG = flag('config', 'both');
const PROMPTS = [
  'a red circle moves left on a blue background',
  'a yellow star bounces on a checkered background',
  'a green square moves up on a black background',
];

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

async function startRedis(port: number): Promise<ChildProcess> {
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  await new Promise<void>((resolve) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/Ready to accept connections/.test(out)) resolve();
    });
  });
  return proc;
}

interface Result {
  config: string;
  accepted: number;
  succeeded: number;
  cancelledAtEnd: number;
  lost: number;
  p50: number;
  p99: number;
  polls: number;
  rss: { t: number; mib: number }[];
  workerRss: number[];
}

async function runConfig(config: 'local' | 'redis'): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), `kinema-bench-${config}-`));
  const children: Child[] = [];
  let redis: ChildProcess | undefined;
  try {
    const args = ['serve', '--port', '0', '--data', dir, '--max-per-client', String(CLIENTS * 2)];
    if (config === 'redis') {
      const port = 16379 + Math.floor(Math.random() * 1000);
      redis = await startRedis(port);
      args.push('--queue', `redis://127.0.0.1:${port}`);
      for (let i = 0; i < 2; i++) {
        const w = startKinema(['worker', '--queue', `redis://127.0.0.1:${port}`]);
        children.push(w);
        await w.waitForOutput(/waiting for jobs/);
      }
    }
    const server = startKinema(args);
    children.push(server);
    const url = (await server.waitForOutput(/listening on (http:\/\/\S+)/))[1]!;
    const t0 = Date.now();
    const deadline = t0 + SECONDS * 1000;
    const accepted: string[] = [];
    const open = new Set<string>();
    const latencies: number[] = [];
    const rss: Result['rss'] = [];
    const workerRss: number[] = [];
    const sampler = setInterval(() => {
      rss.push({ t: Math.round((Date.now() - t0) / 1000), mib: rssMiB(server.proc.pid!) });
      for (const w of children.slice(0, -1)) workerRss.push(rssMiB(w.proc.pid!));
    }, 5000);
    const poller = (async () => {
      while (Date.now() < deadline) {
        const ids = [...open];
        if (ids.length > 0) {
          const id = ids[Math.floor(Math.random() * ids.length)]!;
          const s = performance.now();
          const r = await fetch(`${url}/v1/videos/${id}`);
          await r.arrayBuffer();
          latencies.push(performance.now() - s);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const client = async (c: number): Promise<void> => {
      while (Date.now() < deadline) {
        const r = await fetch(`${url}/v1/videos`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: PROMPTS[c % PROMPTS.length], steps: STEPS, seed: c }),
        });
        const body = (await r.json()) as { id?: string };
        if (r.status !== 202 || !body.id) throw new Error(`submit: HTTP ${r.status} ${JSON.stringify(body)}`);
        accepted.push(body.id);
        open.add(body.id);
        const ctrl = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
        await Promise.race([
          readSse(`${url}/v1/videos/${body.id}/events`),
          new Promise((resolve) => ctrl.addEventListener('abort', resolve)),
        ]);
        if (Date.now() >= deadline) return;
        open.delete(body.id);
      }
    };
    await Promise.all([...Array(CLIENTS).keys()].map(client));
    await poller;
    clearInterval(sampler);
    // Account for every accepted id before touching anything: queued or running at the deadline is "open",
    // missing or failed is lost. Then the open ones are cancelled (clean-up only).
    let succeeded = 0;
    let cancelled = 0;
    let lost = 0;
    const stillOpen: string[] = [];
    for (const id of accepted) {
      const r = await fetch(`${url}/v1/videos/${id}`);
      const j = r.ok ? ((await r.json()) as { status: string; error?: unknown }) : null;
      if (j?.status === 'succeeded') succeeded++;
      else if (j && (j.status === 'queued' || j.status === 'running')) (cancelled++, stillOpen.push(id));
      else {
        lost++;
        console.error(`lost: ${id} HTTP ${r.status} ${JSON.stringify(j)}`);
      }
    }
    for (const id of stillOpen) await fetch(`${url}/v1/videos/${id}`, { method: 'DELETE' });
    return {
      config,
      accepted: accepted.length,
      succeeded,
      cancelledAtEnd: cancelled,
      lost,
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
      polls: latencies.length,
      rss,
      workerRss,
    };
  } finally {
    for (const c of children) await killHard(c);
    redis?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const configs: ('local' | 'redis')[] = CONFIG === 'both' ? ['local', 'redis'] : [CONFIG as 'local' | 'redis'];
if (configs.includes('redis') && spawnSync('redis-server', ['--version']).status !== 0)
  throw new Error('bench:serve --config redis needs redis-server (scripts/install-redis.sh)');
console.log(`bench:serve: ${CLIENTS} clients, ${SECONDS} s per configuration, ${STEPS} steps, default model`);
console.log(
  '| configuration | s | jobs accepted | completed | open at the deadline | lost | GET /v1/videos/:id p50 / p99 (ms, n) | server RSS first / max / last (MiB) | worker RSS max (MiB) |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const c of configs) {
  const r = await runConfig(c);
  const mib = r.rss.map((x) => x.mib);
  const label =
    c === 'local' ? 'one server (in-process, concurrency 1)' : 'server + 2 BullMQ workers (Redis)';
  console.log(
    `| ${label} | ${SECONDS} | ${r.accepted} | ${r.succeeded} | ${r.cancelledAtEnd} | ${r.lost} | ` +
      `${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} (${r.polls}) | ${mib[0]?.toFixed(0)} / ${Math.max(...mib).toFixed(0)} / ${mib.at(-1)?.toFixed(0)} | ` +
      `${r.workerRss.length ? Math.max(...r.workerRss).toFixed(0) : '–'} |`,
  );
  console.log(
    `RSS over time (${c}, s:MiB): ${r.rss
      .filter((_, i) => i % 6 === 0)
      .map((x) => `${x.t}:${x.mib.toFixed(0)}`)
      .join(' ')}`,
  );
}
