// The caption grammar of the procedural world: a random paraphrase generator (captionOf, staticCaptionOf),
// the plain canonical form (canonicalCaption), the vocabulary, and a parser (parsePrompt) that reads every
// paraphrase the grammar produces back into attributes and lists the words it does not know.
//
// A caption is one or two object clauses and a background phrase (at the end, or at the front followed by a
// comma), optionally followed by a camera clause. See docs/world.md for the full grammar.

import type { Generator } from '../../engine/random.js';
import {
  COLOURS,
  backgroundColours,
  isLinearMotion,
  type Background,
  type ColourName,
  type MotionName,
  type ObjectSpec,
  type SceneSpec,
  type ShapeName,
  type Size,
  type Speed,
} from './world.js';
import { KinemaError } from '../../errors.js';

export interface ParsedObject {
  shape?: ShapeName;
  colour?: ColourName;
  size?: Size;
  motion?: MotionName;
  speed?: Speed;
}

export interface ParsedPrompt {
  objects: ParsedObject[];
  /** The background's (first) colour. */
  background?: ColourName;
  /** Every background colour named, in order (solid: one; gradient, stripes, checker: two). */
  backgroundColours?: ColourName[];
  backgroundKind?: Background['kind'];
  /** The camera pan the prompt names; null when it names none (the grammar always states a pan). */
  cameraPan?: 'left' | 'right' | null;
  unknownWords: string[];
}

type SpecialMotion = 'bounce' | 'rotate' | 'grow' | 'shrink' | 'orbit';

// ---- the grammar's word lists ----

const SHAPE_WORDS: Record<ShapeName, string[]> = {
  circle: ['circle', 'ball', 'disc', 'dot'],
  square: ['square', 'box', 'block', 'tile'],
  triangle: ['triangle', 'triangular shape'],
  star: ['star', 'star shape'],
  ring: ['ring', 'donut', 'hoop'],
  cross: ['cross', 'plus sign', 'plus shape'],
};
const SIZE_WORDS: Record<Size, string[]> = {
  small: ['small', 'little', 'tiny'],
  large: ['large', 'big', 'huge'],
};
const SPEED_WORDS: Record<Speed, string[]> = {
  slow: ['slowly', 'gently', 'leisurely'],
  fast: ['quickly', 'rapidly', 'swiftly', 'fast'],
};
const LINEAR_VERBS = ['moves', 'drifts', 'slides', 'glides', 'travels', 'heads'];
const LINEAR_PARTICIPLES = ['moving', 'drifting', 'sliding', 'gliding', 'travelling', 'heading'];
const SPECIAL_VERBS: Record<SpecialMotion, string[]> = {
  bounce: ['bounces', 'bounces up and down', 'hops', 'bounces in place'],
  rotate: ['rotates', 'spins', 'turns', 'spins in place', 'rotates in place', 'twirls'],
  grow: ['grows', 'expands', 'gets bigger', 'swells'],
  shrink: ['shrinks', 'contracts', 'gets smaller'],
  orbit: ['orbits', 'revolves', 'moves in an orbit', 'swirls around'],
};
const SPECIAL_PARTICIPLES: Record<SpecialMotion, string[]> = {
  bounce: ['bouncing', 'hopping', 'bouncing up and down'],
  rotate: ['rotating', 'spinning', 'turning', 'twirling'],
  grow: ['growing', 'expanding', 'getting bigger', 'swelling'],
  shrink: ['shrinking', 'contracting', 'getting smaller'],
  orbit: ['orbiting', 'revolving', 'swirling around'],
};
/** Words that name a special motion wherever they appear in an object clause. */
const SPECIAL_KEYWORDS: Record<SpecialMotion, string[]> = {
  bounce: ['bounces', 'bouncing', 'hops', 'hopping'],
  rotate: ['rotates', 'rotating', 'spins', 'spinning', 'turns', 'turning', 'twirls', 'twirling'],
  grow: ['grows', 'growing', 'expands', 'expanding', 'swells', 'swelling', 'bigger'],
  shrink: ['shrinks', 'shrinking', 'contracts', 'contracting', 'smaller'],
  orbit: ['orbits', 'orbiting', 'orbit', 'revolves', 'revolving', 'swirls', 'swirling'],
};
const DIRECTION_WORDS: Record<string, ['v' | 'h', 'up' | 'down' | 'left' | 'right']> = {
  left: ['h', 'left'],
  leftward: ['h', 'left'],
  right: ['h', 'right'],
  rightward: ['h', 'right'],
  up: ['v', 'up'],
  upward: ['v', 'up'],
  upwards: ['v', 'up'],
  top: ['v', 'up'],
  upper: ['v', 'up'],
  down: ['v', 'down'],
  downward: ['v', 'down'],
  downwards: ['v', 'down'],
  bottom: ['v', 'down'],
  lower: ['v', 'down'],
};
const BACKGROUND_TEMPLATES: Record<Background['kind'], string[]> = {
  solid: [
    'on a {a} background',
    'on {a}',
    'over {a}',
    'against a {a} backdrop',
    'on a plain {a} background',
    'in front of a {a} background',
  ],
  gradient: [
    'on a {a} to {b} gradient',
    'over a gradient from {a} to {b}',
    'on a background fading from {a} to {b}',
    'against a {o} {a} to {b} gradient',
  ],
  stripes: ['on {a} and {b} stripes', 'over a {a} and {b} striped background', 'against {a} and {b} stripes'],
  checker: [
    'on a {a} and {b} checkerboard',
    'over a {a} and {b} checkered background',
    'on {a} and {b} checks',
  ],
};
const CAMERA_TEMPLATES = [
  'while the camera pans {d}',
  'as the camera pans to the {d}',
  'with the camera panning {d}',
];
const STILL_TEMPLATES = ['{x}', '{x}', 'a picture of {x}', 'an image of {x}', 'a still image of {x}'];
const OBJECT_JOINERS = [' and ', ' while ', ', and ', ' as '];

function directionPhrases(m: MotionName): string[] {
  const [v, h] = m.includes('-') ? m.split('-') : m === 'up' || m === 'down' ? [m, ''] : ['', m];
  if (!v) return [h!, `to the ${h}`, `${h}ward`, `toward the ${h}`, `towards the ${h}`];
  if (!h)
    return v === 'up'
      ? ['up', 'upward', 'upwards', 'toward the top']
      : ['down', 'downward', 'toward the bottom'];
  const edge = v === 'up' ? ['upper', 'top'] : ['lower', 'bottom'];
  return [
    m,
    `${v} and to the ${h}`,
    `diagonally ${v} and ${h}`,
    `toward the ${edge[0]} ${h}`,
    `to the ${edge[1]} ${h}`,
  ];
}

// ---- generation ----

function pick<T>(rng: Generator, items: readonly T[]): T {
  return items[Math.floor(rng.uniform(1)[0]! * items.length)]!;
}

function chance(rng: Generator, p: number): boolean {
  return rng.uniform(1)[0]! < p;
}

/** "a" → "an" before a vowel-initial word. */
function fixArticles(text: string): string {
  return text.replace(/\ba ([aeiou])/g, 'an $1');
}

function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(\w)\}/g, (_, k: string) => vars[k] ?? '');
}

function nounPhrase(o: ObjectSpec, rng: Generator | null): string {
  if (!rng) return `a ${o.size} ${o.colour} ${o.shape}`;
  const size = chance(rng, 0.75) ? `${pick(rng, SIZE_WORDS[o.size])} ` : '';
  return `${pick(rng, ['a', 'a', 'the'])} ${size}${o.colour} ${pick(rng, SHAPE_WORDS[o.shape])}`;
}

function motionPhrase(o: ObjectSpec, rng: Generator, participle: boolean): string {
  const special = isLinearMotion(o.motion) ? null : (o.motion as SpecialMotion);
  const core = special
    ? pick(rng, (participle ? SPECIAL_PARTICIPLES : SPECIAL_VERBS)[special])
    : `${pick(rng, participle ? LINEAR_PARTICIPLES : LINEAR_VERBS)} ${pick(rng, directionPhrases(o.motion))}`;
  if (!chance(rng, 0.75)) return core;
  const adverb = pick(rng, SPEED_WORDS[o.speed]);
  return chance(rng, 0.5) ? `${core} ${adverb}` : `${adverb} ${core}`;
}

function backgroundPhrase(bg: Background, rng: Generator | null): string {
  const [a, b] = backgroundColours(bg);
  const o = bg.kind === 'gradient' && bg.vertical ? 'vertical' : 'horizontal';
  if (!rng) {
    if (bg.kind === 'solid') return `on a ${a} background`;
    if (bg.kind === 'gradient') return `on a ${o} ${a} to ${b} gradient`;
    return bg.kind === 'stripes' ? `on ${a} and ${b} stripes` : `on a ${a} and ${b} checkerboard`;
  }
  return fill(pick(rng, BACKGROUND_TEMPLATES[bg.kind]), { a: a!, b: b ?? '', o });
}

/** A random paraphrase of the scene from the grammar. */
export function captionOf(scene: SceneSpec, rng: Generator): string {
  const form = rng.uniform(1)[0]!;
  const participle = form >= 0.8;
  const clauses = scene.objects.map((o) => `${nounPhrase(o, rng)} ${motionPhrase(o, rng, participle)}`);
  const objects = clauses.join(participle ? ' and ' : pick(rng, OBJECT_JOINERS));
  const bg = backgroundPhrase(scene.background, rng);
  const camera = scene.cameraPan
    ? `${pick(rng, [' ', ', '])}${fill(pick(rng, CAMERA_TEMPLATES), { d: scene.cameraPan })}`
    : '';
  return fixArticles(form < 0.25 ? `${bg}, ${objects}${camera}` : `${objects} ${bg}${camera}`);
}

/** A random caption that describes the scene as a still image (no motion, no camera). */
export function staticCaptionOf(scene: SceneSpec, rng: Generator): string {
  const objects = scene.objects.map((o) => nounPhrase(o, rng)).join(' and ');
  return fixArticles(
    fill(pick(rng, STILL_TEMPLATES), { x: `${objects} ${backgroundPhrase(scene.background, rng)}` }),
  );
}

function canonicalMotion(o: ObjectSpec): string {
  const adverb = o.speed === 'slow' ? 'slowly' : 'quickly';
  const verb: Record<SpecialMotion, string> = {
    bounce: 'bounces',
    rotate: 'rotates',
    grow: 'grows',
    shrink: 'shrinks',
    orbit: 'orbits',
  };
  return isLinearMotion(o.motion)
    ? `moves ${o.motion} ${adverb}`
    : `${verb[o.motion as SpecialMotion]} ${adverb}`;
}

/**
 * The plain form naming every attribute: "a small red circle moves left slowly on a blue background".
 * With still = true the image-mode form without motion: "a small red circle on a blue background".
 */
export function canonicalCaption(scene: SceneSpec, opts: { still?: boolean } = {}): string {
  const still = opts.still === true;
  const objects = scene.objects.map((o) =>
    still ? nounPhrase(o, null) : `${nounPhrase(o, null)} ${canonicalMotion(o)}`,
  );
  const camera = scene.cameraPan && !still ? `, while the camera pans ${scene.cameraPan}` : '';
  return fixArticles(`${objects.join(' and ')} ${backgroundPhrase(scene.background, null)}${camera}`);
}

// ---- vocabulary and lexicon ----

interface Lexicon {
  vocabulary: Set<string>;
  colour: Map<string, ColourName>;
  shape: Map<string, ShapeName>;
  size: Map<string, Size>;
  speed: Map<string, Speed>;
  special: Map<string, SpecialMotion>;
}

let lexicon: Lexicon | null = null;

function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+/g) ?? [];
}

function mapWords<K extends string>(table: Record<K, string[]>, skip: Set<string>): Map<string, K> {
  const m = new Map<string, K>();
  for (const [key, phrases] of Object.entries(table) as [K, string[]][]) {
    for (const p of phrases) for (const w of words(p)) if (!skip.has(w)) m.set(w, key);
  }
  return m;
}

/** Built on first use: world.ts and this module import each other, so nothing runs at load time. */
function getLexicon(): Lexicon {
  if (lexicon) return lexicon;
  const texts: string[] = ['a an the and while as , camera', 'vertical horizontal'];
  const tables = [
    SHAPE_WORDS,
    SIZE_WORDS,
    SPEED_WORDS,
    SPECIAL_VERBS,
    SPECIAL_PARTICIPLES,
    BACKGROUND_TEMPLATES,
  ];
  for (const t of tables) texts.push(...Object.values<string[]>(t).flat());
  texts.push(...LINEAR_VERBS, ...LINEAR_PARTICIPLES, ...CAMERA_TEMPLATES, ...STILL_TEMPLATES, ...COLOURS);
  texts.push('left right', 'moves slowly quickly');
  const motions = ['left', 'right', 'up', 'down', 'up-left', 'up-right', 'down-left', 'down-right'] as const;
  for (const m of motions) texts.push(...directionPhrases(m));
  const vocabulary = new Set(texts.flatMap((t) => words(t.replace(/\{\w\}/g, ' '))));
  lexicon = {
    vocabulary,
    colour: new Map(COLOURS.map((c) => [c, c])),
    shape: mapWords(SHAPE_WORDS, new Set(['shape', 'sign'])),
    size: mapWords(SIZE_WORDS, new Set()),
    speed: mapWords(SPEED_WORDS, new Set()),
    special: mapWords(SPECIAL_KEYWORDS, new Set()),
  };
  return lexicon;
}

/** Every word the caption grammar can produce (lower case). */
export function vocabularyWords(): Set<string> {
  return new Set(getLexicon().vocabulary);
}

// ---- parsing ----

interface Draft extends ParsedObject {
  hasNoun: boolean;
  special?: SpecialMotion;
  v?: 'up' | 'down';
  h?: 'left' | 'right';
}

const BACKGROUND_TRIGGERS = new Set(['on', 'over', 'against', 'front']);
const BACKGROUND_NOUNS: Record<string, Background['kind'] | null> = {
  background: null,
  backdrop: null,
  gradient: 'gradient',
  fading: 'gradient',
  stripes: 'stripes',
  striped: 'stripes',
  checkerboard: 'checker',
  checkered: 'checker',
  checks: 'checker',
};
const CAMERA_WORDS = new Set(['camera', 'pans', 'panning']);
const LINEAR_WORDS = new Set([...LINEAR_VERBS, ...LINEAR_PARTICIPLES]);

function finishObject(d: Draft): ParsedObject {
  const out: ParsedObject = {};
  if (d.shape) out.shape = d.shape;
  if (d.colour) out.colour = d.colour;
  if (d.size) out.size = d.size;
  if (d.speed) out.speed = d.speed;
  if (d.special) out.motion = d.special;
  else if (d.v && d.h) out.motion = `${d.v}-${d.h}`;
  else if (d.v || d.h) out.motion = (d.v ?? d.h)!;
  return out;
}

class PromptParser {
  readonly lex = getLexicon();
  readonly drafts: Draft[] = [];
  readonly bgColours: ColourName[] = [];
  bgKind: Background['kind'] | undefined;
  cameraPan: 'left' | 'right' | null = null;
  context: 'object' | 'background' | 'camera' = 'object';
  readonly unknown: string[] = [];

  /** The object an adjective belongs to: a fresh one once the current object has its noun. */
  adjectiveTarget(): Draft {
    const last = this.drafts[this.drafts.length - 1];
    if (last && !last.hasNoun) return last;
    const d: Draft = { hasNoun: false };
    this.drafts.push(d);
    return d;
  }

  current(): Draft {
    return this.drafts[this.drafts.length - 1] ?? this.adjectiveTarget();
  }

  /** Words that start or continue an object clause; they also end a background or camera phrase. */
  objectWord(w: string): boolean {
    const lex = this.lex;
    return (
      lex.shape.has(w) || lex.size.has(w) || lex.special.has(w) || LINEAR_WORDS.has(w) || lex.speed.has(w)
    );
  }

  token(w: string): void {
    if (w === ',') {
      this.context = 'object';
      return;
    }
    if (CAMERA_WORDS.has(w)) this.context = 'camera';
    else if (BACKGROUND_TRIGGERS.has(w)) this.context = 'background';
    else if (w in BACKGROUND_NOUNS) {
      this.context = 'background';
      this.bgKind = BACKGROUND_NOUNS[w] ?? this.bgKind;
    } else if (this.context !== 'object' && this.objectWord(w)) {
      this.context = 'object';
      this.objectToken(w);
    } else if (this.context === 'background') this.backgroundToken(w);
    else if (this.context === 'camera') this.cameraToken(w);
    else this.objectToken(w);
  }

  backgroundToken(w: string): void {
    const c = this.lex.colour.get(w);
    if (c) this.bgColours.push(c);
    else if (DIRECTION_WORDS[w]) {
      this.context = 'object';
      this.objectToken(w);
    } else this.filler(w);
  }

  cameraToken(w: string): void {
    const dir = DIRECTION_WORDS[w];
    if (dir && dir[0] === 'h') this.cameraPan = dir[1] as 'left' | 'right';
    else if (this.lex.colour.has(w)) {
      this.context = 'object';
      this.objectToken(w);
    } else this.filler(w);
  }

  objectToken(w: string): void {
    const lex = this.lex;
    const colour = lex.colour.get(w);
    const size = lex.size.get(w);
    const shape = lex.shape.get(w);
    if (colour) this.adjectiveTarget().colour ??= colour;
    else if (size) this.adjectiveTarget().size ??= size;
    else if (shape) {
      const d = this.adjectiveTarget();
      d.shape = shape;
      d.hasNoun = true;
    } else if (lex.speed.has(w)) this.current().speed ??= lex.speed.get(w);
    else if (lex.special.has(w)) this.current().special ??= lex.special.get(w);
    else if (DIRECTION_WORDS[w]) {
      const [axis, dir] = DIRECTION_WORDS[w];
      const d = this.current();
      if (axis === 'v') d.v ??= dir as 'up' | 'down';
      else d.h ??= dir as 'left' | 'right';
    } else this.filler(w);
  }

  filler(w: string): void {
    if (!this.lex.vocabulary.has(w) && !this.unknown.includes(w)) this.unknown.push(w);
  }
}

/** Reads a prompt into object attributes, background and camera pan; lists the words it does not know. */
export function parsePrompt(text: string): ParsedPrompt {
  if (typeof text !== 'string')
    throw new KinemaError('WORLD_BAD_SCENE', `parsePrompt: prompt must be a string, got ${typeof text}`);
  const p = new PromptParser();
  for (const w of text.toLowerCase().match(/[a-z]+|[,;.:]/g) ?? []) p.token(/[a-z]/.test(w) ? w : ',');
  const objects = p.drafts.map(finishObject).filter((o) => Object.keys(o).length > 0);
  const out: ParsedPrompt = { objects, cameraPan: p.cameraPan, unknownWords: p.unknown };
  if (p.bgColours.length > 0) {
    out.background = p.bgColours[0]!;
    out.backgroundColours = [...p.bgColours];
    out.backgroundKind = p.bgKind ?? 'solid';
  } else if (p.bgKind) out.backgroundKind = p.bgKind;
  return out;
}
