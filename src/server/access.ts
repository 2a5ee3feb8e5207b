// Who may talk to the server. Without a token it binds loopback addresses only (a machine-local service), and
// refuses to start on any other host; with a token every request must carry it, as `Authorization: Bearer T`
// or, for what a browser cannot send headers with (EventSource, <video src>), as `?access_token=T`.
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { KinemaError } from '../errors.js';
import { RequestError } from './job_params.js';

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const h = host.replace(/^\[|\]$/g, '');
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1';
  return false;
}

/** Throws before anything binds when the host would expose a server that has no token. */
export function checkBindAllowed(host: string, token: string | undefined): void {
  if (!token && !isLoopbackHost(host))
    throw new KinemaError(
      'SERVER_TOKEN_REQUIRED',
      `--host ${host}: a server without --token binds loopback addresses only (127.0.0.1, ::1, localhost); ` +
        `pass --token to listen on ${host}`,
    );
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The token a request carries, from the Authorization header or the access_token query parameter. */
export function requestToken(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? m[1] : '';
  }
  const q = req.query as Record<string, unknown> | undefined;
  return typeof q?.['access_token'] === 'string' ? q['access_token'] : undefined;
}

export function tokenHook(token: string) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const given = requestToken(req);
    if (given === undefined) {
      reply.header('www-authenticate', 'Bearer');
      throw new RequestError(
        401,
        'SERVER_UNAUTHORIZED',
        'authorization',
        'authorization: a Bearer token is required',
      );
    }
    if (!sameSecret(given, token))
      throw new RequestError(
        403,
        'SERVER_FORBIDDEN',
        'authorization',
        'authorization: the token is not valid',
      );
  };
}
