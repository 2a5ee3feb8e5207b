// Every refusal is a 4xx with one JSON body shape, `{error: {code, field, message}}`, the field naming what
// was at fault: schema violations (fastify's ajv errors) name the property, framework refusals (body too
// large, bad JSON, wrong content type) name `body` or `content-type`, and our RequestErrors carry their own.
import type { FastifyError, FastifyInstance } from 'fastify';
import { isKinemaError } from '../errors.js';
import { RequestError } from './job_params.js';

export interface ErrorBody {
  error: { code: string; field: string | null; message: string };
}

interface AjvIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** The property an ajv issue is about: `/frames` → frames; a missing or extra property by its name. */
function fieldOf(issue: AjvIssue, context: string | undefined): string {
  const p = issue.params ?? {};
  const named = p['missingProperty'] ?? p['additionalProperty'];
  const path = (issue.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  if (typeof named === 'string') return path ? `${path}.${named}` : named;
  return path || context || 'body';
}

function validationBody(err: FastifyError): ErrorBody {
  const issue = (err.validation?.[0] ?? {}) as AjvIssue;
  const field = fieldOf(issue, err.validationContext);
  let message = `${field}: ${issue.message ?? 'is not valid'}`;
  if (issue.keyword === 'additionalProperties') message = `${field}: unknown field`;
  if (issue.keyword === 'enum' && Array.isArray(issue.params?.['allowedValues']))
    message = `${field}: must be one of ${(issue.params['allowedValues'] as unknown[]).join(', ')}`;
  return { error: { code: 'SERVER_INVALID_FIELD', field, message } };
}

const FRAMEWORK_FIELDS: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'body',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'body',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'content-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'content-length',
};

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation) return reply.code(400).send(validationBody(err));
    if (err instanceof RequestError)
      return reply
        .code(err.statusCode)
        .send({ error: { code: err.code, field: err.field, message: err.message } });
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const field = (err.code && FRAMEWORK_FIELDS[err.code]) ?? null;
      const code = err.code ? `SERVER_${err.code.replace(/^FST_ERR_/, '')}` : 'SERVER_BAD_REQUEST';
      return reply
        .code(status)
        .send({ error: { code, field, message: field ? `${field}: ${err.message}` : err.message } });
    }
    req.log.error(err);
    const code = isKinemaError(err) ? err.code : 'SERVER_INTERNAL';
    return reply.code(500).send({ error: { code, field: null, message: err.message } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({
      error: {
        code: 'SERVER_NO_ROUTE',
        field: 'path',
        message: `path: no route ${req.method} ${req.url.split('?')[0]}`,
      },
    }),
  );
}
