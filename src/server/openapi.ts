// /openapi.json: the API described from the same schema objects the routes validate with, so the document
// cannot drift from what the server accepts.
import { videoRequestSchema } from './job_params.js';
import type { Limits } from './job_params.js';
import { eventsQuery, idParams, jobSchema, listQuery } from './routes_videos.js';

const errorBody = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        field: { type: ['string', 'null'], description: 'the request field at fault' },
        message: { type: 'string' },
      },
    },
  },
};

const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });
const refusal = { description: 'refused: the body names the field', ...json(errorBody) };

function queryParams(schema: { properties: Record<string, unknown> }) {
  return Object.entries(schema.properties).map(([name, s]) => ({ name, in: 'query', schema: s }));
}

const idParam = { name: 'id', in: 'path', required: true, schema: idParams.properties.id };

export function openApiDocument(limits: Limits, version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'Kinema', version, description: 'Text-to-video generation as a service' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { VideoRequest: videoRequestSchema(limits), Video: jobSchema, Error: errorBody },
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/videos': {
        post: {
          summary: 'Queue a video',
          requestBody: { required: true, ...json({ $ref: '#/components/schemas/VideoRequest' }) },
          responses: {
            '202': {
              description: 'queued',
              ...json({
                type: 'object',
                properties: { id: { type: 'string' }, status: { const: 'queued' } },
              }),
            },
            '400': refusal,
            '401': refusal,
            '413': refusal,
            '429': refusal,
          },
        },
        get: {
          summary: 'List videos, newest first',
          parameters: queryParams(listQuery),
          responses: {
            '200': {
              description: 'a page',
              ...json({
                type: 'object',
                properties: {
                  items: { type: 'array', items: { $ref: '#/components/schemas/Video' } },
                  next_cursor: { type: ['string', 'null'] },
                },
              }),
            },
            '400': refusal,
          },
        },
      },
      '/v1/videos/{id}': {
        get: {
          summary: 'A video job',
          parameters: [idParam],
          responses: {
            '200': { description: 'the job', ...json({ $ref: '#/components/schemas/Video' }) },
            '404': refusal,
          },
        },
        delete: {
          summary:
            'Cancel a queued or running job (running: stops within one step), or delete a finished one and its file',
          parameters: [idParam],
          responses: {
            '200': { description: 'cancelled' },
            '202': { description: 'cancelling: the running job stops at its next step' },
            '204': { description: 'deleted' },
            '404': refusal,
          },
        },
      },
      '/v1/videos/{id}/events': {
        get: {
          summary:
            'Server-Sent Events: queued, position, started, step, preview (PNG data URL), requeued, done | failed | cancelled; resume with Last-Event-ID',
          parameters: [idParam, ...queryParams(eventsQuery)],
          responses: {
            '200': { description: 'event stream', content: { 'text/event-stream': {} } },
            '404': refusal,
          },
        },
      },
      '/v1/videos/{id}/content': {
        get: {
          summary: 'The finished video; HTTP Range supported',
          parameters: [idParam],
          responses: {
            '200': { description: 'the file' },
            '206': { description: 'a byte range' },
            '409': refusal,
            '416': refusal,
          },
        },
      },
      '/v1/models': {
        get: {
          summary: 'Model ids',
          responses: {
            '200': {
              description: 'models',
              ...json({
                type: 'object',
                properties: {
                  data: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' } } } },
                },
              }),
            },
          },
        },
      },
      '/healthz': {
        get: { summary: 'Liveness and queue depth', responses: { '200': { description: 'ok' } } },
      },
    },
  };
}
