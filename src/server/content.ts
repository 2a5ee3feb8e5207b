// GET /v1/videos/:id/content: the finished file with HTTP Range support (RFC 9110 §14), so a browser's
// <video> can seek. One range per request (what media elements send); a multi-range request gets the first.
import { createReadStream, statSync } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RequestError } from './job_params.js';

/** [start, end] inclusive, 'unsatisfiable', or null for no/ignored Range header. */
export function parseRange(
  header: string | undefined,
  size: number,
): [number, number] | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const m = /^bytes=\s*(\d*)-(\d*)\s*(?:,.*)?$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // not a bytes range we understand: serve the whole file
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return 'unsatisfiable';
  return [start, end];
}

export function sendFileWithRanges(
  req: FastifyRequest,
  reply: FastifyReply,
  path: string,
  contentType: string,
): FastifyReply {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new RequestError(404, 'SERVER_CONTENT_MISSING', 'id', `id: the video file of this job is missing`);
  }
  reply.header('accept-ranges', 'bytes').header('cache-control', 'no-cache');
  const range = parseRange(req.headers.range, size);
  if (range === 'unsatisfiable') {
    return reply
      .code(416)
      .header('content-range', `bytes */${size}`)
      .send({
        error: {
          code: 'SERVER_RANGE_NOT_SATISFIABLE',
          field: 'range',
          message: `range: the file has ${size} bytes`,
        },
      });
  }
  reply.header('content-type', contentType);
  if (range === null) return reply.header('content-length', size).send(createReadStream(path));
  const [start, end] = range;
  return reply
    .code(206)
    .header('content-range', `bytes ${start}-${end}/${size}`)
    .header('content-length', end - start + 1)
    .send(createReadStream(path, { start, end }));
}
