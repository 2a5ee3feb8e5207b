// `startWorker(options)`: a BullMQ worker that runs Kinema jobs with the same runJob as the in-process runner,
// reports each step (and preview) through job.updateProgress, and uploads the finished video to the server
// over HTTP. It keeps its lock alive while it works; if it dies, BullMQ's stalled check (every lockMs/2)
// hands the job to another worker after about lockMs.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnrecoverableError, Worker } from 'bullmq';
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import { KinemaError } from '../errors.js';
import { ModelRegistry, PipelinePool, REPO_MODELS_DIR } from './models.js';
import { QUEUE_NAME, SERVER_URL_KEY, cancelKey, redisConnection } from './redis_executor.js';
import type { WorkerJobData, WorkerProgress } from './redis_executor.js';
import { JobCancelledError, runJob } from './run_job.js';

export interface WorkerOptions {
  queue: string;
  concurrency?: number;
  /** Model roots searched for the job's model id (default: the repo's models/). */
  modelRoots?: string[];
  /** The server's token, if it has one (for the upload). */
  token?: string;
  /** BullMQ lock duration: how long a dead worker holds its job before another takes it. */
  lockMs?: number;
  previewEvery?: number;
  /** Called with each job id as it starts (the CLI logs it). */
  onJob?: (id: string) => void;
}

export interface KinemaWorker {
  name: string;
  close(): Promise<void>;
}

async function upload(serverUrl: string, data: WorkerJobData, file: string, token?: string): Promise<void> {
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'x-kinema-upload-key': data.uploadKey,
  };
  if (token) headers['authorization'] = `Bearer ${token}`;
  const res = await fetch(`${serverUrl}/v1/internal/videos/${data.id}/content`, {
    method: 'PUT',
    headers,
    body: readFileSync(file),
  });
  if (res.status === 409) throw new UnrecoverableError('cancelled');
  if (!res.ok)
    throw new KinemaError(
      'SERVER_UPLOAD_FAILED',
      `upload of ${data.id} to ${serverUrl}: HTTP ${res.status} ${await res.text()}`,
    );
}

export async function startWorker(o: WorkerOptions): Promise<KinemaWorker> {
  if (!/^rediss?:\/\//.test(o.queue))
    throw new KinemaError('SERVER_BAD_QUEUE_URL', `--queue ${o.queue}: expected redis://host:port`);
  const name = `${hostname()}:${process.pid}`;
  const models = new ModelRegistry(o.modelRoots ?? [REPO_MODELS_DIR]);
  const pool = new PipelinePool();
  const redis = new Redis(o.queue, { maxRetriesPerRequest: null });
  const scratch = mkdtempSync(join(tmpdir(), 'kinema-worker-'));
  const lockMs = o.lockMs ?? 30_000;

  const process_ = async (job: Job<WorkerJobData>): Promise<void> => {
    const data = job.data;
    if (await redis.get(cancelKey(data.id))) throw new UnrecoverableError('cancelled');
    const model = models.find(data.params.model);
    if (!model) throw new UnrecoverableError(`model '${data.params.model}' is not on worker ${name}`);
    o.onJob?.(data.id);
    const file = join(scratch, `${data.id}.${data.params.format}`);
    const pipe = await pool.acquire(model.dir);
    let cancelled = false;
    try {
      await runJob(data.id, {
        pipe,
        modelDir: model.dir,
        params: data.params,
        outputPath: file,
        previewEvery: o.previewEvery ?? 5,
        isCancelled: () => cancelled,
        onStep: async (p) => {
          const progress: WorkerProgress = { ...p, worker: name };
          await job.updateProgress(progress as unknown as object);
          cancelled = (await redis.get(cancelKey(data.id))) !== null;
        },
      });
      const serverUrl = await redis.get(SERVER_URL_KEY);
      if (!serverUrl)
        throw new KinemaError(
          'SERVER_UPLOAD_FAILED',
          'no server URL in Redis (is `kinema serve --queue` running?)',
        );
      await upload(serverUrl, data, file, o.token);
    } catch (err) {
      if (err instanceof JobCancelledError) throw new UnrecoverableError('cancelled');
      throw err;
    } finally {
      pool.release(model.dir, pipe);
      rmSync(file, { force: true, recursive: true });
    }
  };

  const worker = new Worker<WorkerJobData>(QUEUE_NAME, process_, {
    connection: redisConnection(o.queue),
    concurrency: o.concurrency ?? 1,
    lockDuration: lockMs,
    stalledInterval: Math.max(500, Math.floor(lockMs / 2)),
    maxStalledCount: 2,
    name,
  });
  await worker.waitUntilReady();
  return {
    name,
    async close() {
      await worker.close();
      redis.disconnect();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
