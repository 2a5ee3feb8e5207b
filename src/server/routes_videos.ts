// The /v1/videos API. Schemas are declared on the routes (fastify validates with ajv before a handler runs)
// and exported for /openapi.json; what a schema cannot check (models by id, the pixel budget, per-client
// queue length) is checked by JobService before anything is queued.
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { CONTENT_TYPES, ID_PATTERN, RequestError, videoRequestSchema } from './job_params.js';
import type { VideoRequest } from './job_params.js';
import type { JobRecord, JobStatus } from './job_store.js';
import type { JobService } from './job_service.js';
import { sendFileWithRanges } from './content.js';

export const STATUSES: JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: ID_PATTERN } },
} as const;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: STATUSES },
    limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
    cursor: { type: 'string', pattern: '^[1-9][0-9]{0,15}$' },
    access_token: { type: 'string' },
  },
} as const;

export const eventsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    lastEventId: { type: 'string', pattern: '^[0-9]{1,15}$' },
    access_token: { type: 'string' },
  },
} as const;

export const jobSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: STATUSES },
    progress: {
      type: 'object',
      properties: { step: { type: 'integer' }, total: { type: 'integer' }, chunk: { type: 'integer' } },
    },
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
    created: { type: 'string', format: 'date-time' },
    started: { type: 'string', format: 'date-time' },
    finished: { type: 'string', format: 'date-time' },
    params: { type: 'object' },
    content: { type: 'string', description: 'URL of the video, once succeeded' },
  },
} as const;

export function jobView(job: JobRecord): Record<string, unknown> {
  return {
    id: job.id,
    status: job.status,
    progress: { step: job.step, total: job.total, ...(job.chunk !== null && { chunk: job.chunk }) },
    ...(job.error && { error: job.error }),
    created: job.created,
    ...(job.started && { started: job.started }),
    ...(job.finished && { finished: job.finished }),
    params: job.params,
    ...(job.status === 'succeeded' && { content: `/v1/videos/${job.id}/content` }),
  };
}

export function registerVideoRoutes(app: FastifyInstance, service: JobService): void {
  app.post<{ Body: VideoRequest }>(
    '/v1/videos',
    { schema: { body: videoRequestSchema(service.limits) } },
    async (req, reply) => {
      const job = await service.submit(req.body, req.ip);
      return reply
        .code(202)
        .header('location', `/v1/videos/${job.id}`)
        .send({ id: job.id, status: 'queued' });
    },
  );

  app.get<{ Querystring: { status?: JobStatus; limit: number; cursor?: string } }>(
    '/v1/videos',
    { schema: { querystring: listQuery } },
    async (req) => {
      const { status, limit, cursor } = req.query;
      const items = service.store.list({
        limit,
        ...(status && { status }),
        ...(cursor !== undefined && { before: Number(cursor) }),
      });
      const last = items.length === limit ? items[items.length - 1] : undefined;
      return { items: items.map(jobView), next_cursor: last ? String(last.seq) : null };
    },
  );

  app.get<{ Params: { id: string } }>('/v1/videos/:id', { schema: { params: idParams } }, async (req) =>
    jobView(service.get(req.params.id)),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/videos/:id',
    { schema: { params: idParams } },
    async (req, reply) => {
      const result = await service.cancelOrDelete(req.params.id);
      if (result === 'deleted') return reply.code(204).send();
      return reply.code(result === 'cancelling' ? 202 : 200).send({ id: req.params.id, status: result });
    },
  );

  app.get<{ Params: { id: string }; Querystring: { lastEventId?: string } }>(
    '/v1/videos/:id/events',
    { schema: { params: idParams, querystring: eventsQuery } },
    async (req, reply) => {
      service.get(req.params.id); // 404 before the stream starts
      const header = req.headers['last-event-id'];
      const raw = typeof header === 'string' ? header : req.query.lastEventId;
      if (raw !== undefined && !/^[0-9]{1,15}$/.test(raw.trim()))
        throw new RequestError(
          400,
          'SERVER_INVALID_FIELD',
          'last-event-id',
          'last-event-id: must be an event id',
        );
      reply.hijack();
      service.hub.open(req.params.id, reply.raw, raw === undefined ? 0 : Number(raw.trim()));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/videos/:id/content',
    { schema: { params: idParams } },
    async (req, reply) => {
      const job = service.get(req.params.id);
      if (job.status !== 'succeeded' || !job.output)
        throw new RequestError(
          409,
          'SERVER_NOT_READY',
          'id',
          `id: video ${job.id} is ${job.status}, not succeeded`,
        );
      return sendFileWithRanges(
        req,
        reply,
        join(service.videosDir, job.output),
        CONTENT_TYPES[job.params.format],
      );
    },
  );
}
