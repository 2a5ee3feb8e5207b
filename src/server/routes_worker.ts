// PUT /v1/internal/videos/:id/content: a `kinema worker` (BullMQ mode) sends the finished video back over
// HTTP, so workers need no shared file system. Only the holder of the job's upload key (handed to the worker
// in the BullMQ job) may upload; the body streams to a temp name and is renamed into place, so the content
// route never serves half a file.
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { tempPathFor } from '../io/video/atomic.js';
import { RequestError } from './job_params.js';
import { FINISHED } from './job_store.js';
import type { JobService } from './job_service.js';
import { idParams } from './routes_videos.js';

const MAX_UPLOAD_BYTES = 1 << 30;

function sizeLimit(max: number): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > max)
        cb(new RequestError(413, 'SERVER_UPLOAD_TOO_LARGE', 'body', `body: more than ${max} bytes`));
      else cb(null, chunk);
    },
  });
}

export function registerWorkerRoutes(app: FastifyInstance, service: JobService): void {
  app.register(async (scope) => {
    // Raw bodies here only: the stream goes to disk, not into memory.
    scope.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    scope.put<{ Params: { id: string }; Body: Readable }>(
      '/v1/internal/videos/:id/content',
      { schema: { params: idParams } },
      async (req, reply) => {
        const job = service.get(req.params.id);
        const key = req.headers['x-kinema-upload-key'];
        if (typeof key !== 'string' || key !== job.uploadKey)
          throw new RequestError(
            403,
            'SERVER_FORBIDDEN',
            'x-kinema-upload-key',
            "x-kinema-upload-key: not this job's key",
          );
        if (job.status !== 'running' && job.status !== 'queued')
          throw new RequestError(
            409,
            'SERVER_JOB_FINISHED',
            'id',
            `id: job ${job.id} is already ${job.status}`,
          );
        const dest = service.outputPath(job.id, job.params);
        const temp = tempPathFor(dest);
        try {
          await pipeline(req.body, sizeLimit(MAX_UPLOAD_BYTES), createWriteStream(temp));
          const now = service.store.get(job.id);
          if (!now || now.cancelRequested || FINISHED.has(now.status))
            throw new RequestError(409, 'SERVER_JOB_FINISHED', 'id', `id: job ${job.id} was cancelled`);
          renameSync(temp, dest);
        } catch (err) {
          rmSync(temp, { force: true });
          throw err;
        }
        if (!service.finishJob(job.id, 'succeeded', { output: dest.slice(service.videosDir.length + 1) })) {
          rmSync(dest, { force: true });
          throw new RequestError(409, 'SERVER_JOB_FINISHED', 'id', `id: job ${job.id} finished meanwhile`);
        }
        return reply.code(204).send();
      },
    );
  });
}
