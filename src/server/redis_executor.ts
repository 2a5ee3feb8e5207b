// Scale-out: the server puts jobs on a BullMQ queue and `kinema worker`s on any machine run them. The SQLite
// store stays the server's record of every job (the gallery); BullMQ carries the work and its progress:
// workers report steps and previews with job.updateProgress, which reach this process as QueueEvents and go
// into the store and the SSE streams like a local job's. A worker that dies mid-job stops renewing its lock;
// BullMQ's stalled-job check moves the job back to waiting and another worker runs it (at-least-once). The
// finished file comes back over HTTP (routes_worker.ts); cancels travel as a Redis key the worker checks.
import { Queue, QueueEvents } from 'bullmq';
import type { ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { JobRecord } from './job_store.js';
import type { Executor, JobService } from './job_service.js';
import type { JobParams } from './job_params.js';

export const QUEUE_NAME = 'kinema-videos';
export const cancelKey = (id: string): string => `kinema:cancel:${id}`;
/** Where workers upload finished videos: set by the server when it listens, read by a worker per upload. */
export const SERVER_URL_KEY = 'kinema:server-url';

export interface WorkerJobData {
  id: string;
  params: JobParams;
  uploadKey: string;
}

export interface WorkerProgress {
  step: number;
  total: number;
  preview?: string;
  worker: string;
}

export function redisConnection(url: string): ConnectionOptions {
  return { url, maxRetriesPerRequest: null };
}

export class RedisExecutor implements Executor {
  readonly kind = 'redis';
  private readonly queue: Queue<WorkerJobData>;
  private readonly events: QueueEvents;
  private readonly redis: Redis;
  private service: JobService | null = null;
  /** The worker that last reported progress for each running job. */
  private readonly workers = new Map<string, string>();

  constructor(readonly url: string) {
    this.queue = new Queue<WorkerJobData>(QUEUE_NAME, { connection: redisConnection(url) });
    this.events = new QueueEvents(QUEUE_NAME, { connection: redisConnection(url) });
    this.redis = new Redis(url, { maxRetriesPerRequest: null });
  }

  /** Publishes the upload URL, then re-adds the store's queued jobs that BullMQ no longer holds (a restart). */
  async listening(url: string): Promise<void> {
    await this.redis.set(SERVER_URL_KEY, url);
    const service = this.service!;
    for (const id of service.store.queuedIds()) {
      const existing = await this.queue.getJob(id);
      if (!existing) await this.enqueue(service.get(id));
    }
  }

  async start(service: JobService): Promise<void> {
    this.service = service;
    await this.events.waitUntilReady();
    this.events.on('active', ({ jobId }) => void service.markRunning(jobId));
    this.events.on('progress', ({ jobId, data }) =>
      this.onProgress(jobId, data as unknown as WorkerProgress),
    );
    this.events.on('stalled', ({ jobId }) => {
      this.workers.delete(jobId);
      service.requeue(jobId, 'worker lost; BullMQ re-queued the job');
    });
    this.events.on('completed', ({ jobId }) => this.workers.delete(jobId));
    this.events.on('failed', ({ jobId, failedReason }) => {
      this.workers.delete(jobId);
      const job = service.store.get(jobId);
      if (!job) return;
      if (job.cancelRequested || failedReason === 'cancelled') service.finishJob(jobId, 'cancelled');
      else
        service.finishJob(jobId, 'failed', {
          error: { code: 'SERVER_WORKER_FAILED', message: failedReason },
        });
    });
  }

  async enqueue(job: JobRecord): Promise<void> {
    await this.queue.add(
      'video',
      { id: job.id, params: job.params, uploadKey: job.uploadKey },
      { jobId: job.id, removeOnComplete: true, removeOnFail: 1000, attempts: 1 },
    );
  }

  async cancelRunning(job: JobRecord): Promise<void> {
    await this.redis.set(cancelKey(job.id), '1', 'EX', 24 * 3600);
  }

  /** A queued job cancelled in the store leaves BullMQ too (a worker would skip it anyway, by the cancel key). */
  async cancelQueued(job: JobRecord): Promise<void> {
    await this.redis.set(cancelKey(job.id), '1', 'EX', 24 * 3600);
    await (await this.queue.getJob(job.id))?.remove().catch(() => undefined);
  }

  private onProgress(jobId: string, p: WorkerProgress): void {
    const service = this.service!;
    const job = service.store.get(jobId);
    if (!job) return;
    // BullMQ's stalled check does not always surface as a 'stalled' event; a step from another worker than
    // the one that ran the job so far means the job was taken over, and its run starts again.
    const previous = this.workers.get(jobId);
    if (previous !== undefined && previous !== p.worker && job.status === 'running')
      service.requeue(jobId, `worker ${previous} lost; BullMQ handed the job to ${p.worker}`);
    this.workers.set(jobId, p.worker);
    if (service.store.get(jobId)?.status === 'queued') service.markRunning(jobId, { worker: p.worker });
    service.progress(jobId, p);
  }

  async close(): Promise<void> {
    await this.events.close();
    await this.queue.close();
    this.redis.disconnect();
  }
}
