// The request body of POST /v1/videos: its JSON schema (fastify validates it with ajv before the handler runs;
// the same object goes into /openapi.json), the limits that are not expressible in the schema, and the
// normalised job parameters (defaults filled in) that are stored with the job and handed to the pipeline.
import { KinemaError } from '../errors.js';
import type { TextToVideoOptions } from '../pipelines/text_to_video.js';

export const OUTPUT_FORMATS = ['mp4', 'webm', 'gif', 'webp'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];
export const SCHEDULERS = ['ddim', 'ddpm', 'dpm'] as const;

export const CONTENT_TYPES: Record<OutputFormat, string> = {
  mp4: 'video/mp4',
  webm: 'video/webm',
  gif: 'image/gif',
  webp: 'image/webp',
};

/** A model or job id: a plain name, never a path (no '/', no '..'). */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$';
export const MODEL_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';

/** Request fields of features this server does not offer yet: refused by name rather than ignored. */
export const UNSUPPORTED_FIELDS = ['lora', 'image', 'long'] as const;

export interface Limits {
  maxPromptChars: number;
  maxFrames: number;
  maxSide: number;
  maxSteps: number;
  /** frames × width × height: bounds the memory of one job (the latents, the decoded video, the VAE's activations). */
  maxVideoPixels: number;
  /** Jobs queued or running per client (by token, else by address). */
  maxActivePerClient: number;
  /** Jobs queued in total. */
  maxQueued: number;
  /** Bytes of a request body. */
  maxBodyBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxPromptChars: 1000,
  maxFrames: 64,
  maxSide: 512,
  maxSteps: 100,
  maxVideoPixels: 16 * 256 * 256,
  maxActivePerClient: 8,
  maxQueued: 1000,
  maxBodyBytes: 64 * 1024,
};

export interface JobParams {
  prompt: string;
  negative: string;
  frames: number;
  width: number;
  height: number;
  steps: number;
  guidance: number;
  seed: number;
  scheduler: (typeof SCHEDULERS)[number] | null;
  model: string;
  format: OutputFormat;
  fps: number;
}

export type VideoRequest = Partial<Omit<JobParams, 'negative' | 'scheduler'>> & {
  prompt: string;
  negative?: string;
  scheduler?: (typeof SCHEDULERS)[number];
  lora?: unknown;
  image?: unknown;
  long?: unknown;
};

export function videoRequestSchema(limits: Limits): Record<string, unknown> {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['prompt'],
    properties: {
      prompt: { type: 'string', minLength: 1, maxLength: limits.maxPromptChars, pattern: '\\S' },
      negative: { type: 'string', maxLength: limits.maxPromptChars },
      frames: { type: 'integer', minimum: 1, maximum: limits.maxFrames },
      width: { type: 'integer', minimum: 8, maximum: limits.maxSide, multipleOf: 8 },
      height: { type: 'integer', minimum: 8, maximum: limits.maxSide, multipleOf: 8 },
      steps: { type: 'integer', minimum: 1, maximum: limits.maxSteps },
      guidance: { type: 'number', minimum: 0, maximum: 50 },
      seed: { type: 'integer', minimum: 0, maximum: 2 ** 32 - 1 },
      scheduler: { type: 'string', enum: [...SCHEDULERS] },
      model: { type: 'string', pattern: MODEL_ID_PATTERN },
      format: { type: 'string', enum: [...OUTPUT_FORMATS] },
      fps: { type: 'integer', minimum: 1, maximum: 60 },
      lora: { description: 'not supported by this server yet' },
      image: { description: 'not supported by this server yet' },
      long: { description: 'not supported by this server yet' },
    },
  };
}

/** A refusal of a request: a 4xx status, a stable code, and the field at fault. */
export class RequestError extends KinemaError {
  constructor(
    readonly statusCode: number,
    code: string,
    readonly field: string | null,
    message: string,
  ) {
    super(code, message);
    this.name = 'RequestError';
  }
}

export interface ModelDefaults {
  width: number;
  height: number;
  frames: number;
  steps: number;
  fps: number;
}

/** Checks what the schema cannot and fills in the defaults; throws a RequestError naming the field. */
export function normaliseRequest(
  body: VideoRequest,
  limits: Limits,
  model: string,
  d: ModelDefaults,
): JobParams {
  for (const f of UNSUPPORTED_FIELDS)
    if (body[f] !== undefined)
      throw new RequestError(400, 'SERVER_UNSUPPORTED_FIELD', f, `${f}: not supported by this server yet`);
  const p: JobParams = {
    prompt: body.prompt,
    negative: body.negative ?? '',
    frames: body.frames ?? d.frames,
    width: body.width ?? d.width,
    height: body.height ?? d.height,
    steps: body.steps ?? d.steps,
    guidance: body.guidance ?? 9,
    seed: body.seed ?? 0,
    scheduler: body.scheduler ?? null,
    model,
    format: body.format ?? 'mp4',
    fps: body.fps ?? d.fps,
  };
  const pixels = p.frames * p.width * p.height;
  if (pixels > limits.maxVideoPixels) {
    const field = body.frames !== undefined ? 'frames' : body.width !== undefined ? 'width' : 'height';
    throw new RequestError(
      400,
      'SERVER_VIDEO_TOO_LARGE',
      field,
      `frames × width × height = ${p.frames} × ${p.width} × ${p.height} = ${pixels} exceeds this server's ` +
        `limit of ${limits.maxVideoPixels}`,
    );
  }
  return p;
}

/** The pipeline call of a job. */
export function pipelineOptions(p: JobParams): TextToVideoOptions {
  return {
    prompt: p.prompt,
    negativePrompt: p.negative,
    numFrames: p.frames,
    width: p.width,
    height: p.height,
    numInferenceSteps: p.steps,
    guidanceScale: p.guidance,
    seed: p.seed,
    fps: p.fps,
  };
}
