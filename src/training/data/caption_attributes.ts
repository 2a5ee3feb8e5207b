// What a caption says, as classification targets: for each attribute group (the first and the second object's
// shape, colour, size, motion and speed; the number of objects; the background colour; the camera pan) a
// one-hot row when the caption names it, zeros when it does not. The UNet stage's text probe
// (`--text-probe`) trains the text encoder so that these are linearly decodable from its states.
import { parsePrompt, type ParsedObject } from './captions.js';
import { COLOURS, MOTIONS, SHAPES } from './world.js';
import { KinemaError } from '../../errors.js';

export interface AttributeGroup {
  readonly name: string;
  readonly classes: readonly string[];
  /** Column of the group's first class in a targets row. */
  readonly offset: number;
}

const OBJECT_FIELDS: readonly { key: keyof ParsedObject; classes: readonly string[] }[] = [
  { key: 'shape', classes: SHAPES },
  { key: 'colour', classes: COLOURS },
  { key: 'size', classes: ['small', 'large'] },
  { key: 'motion', classes: MOTIONS },
  { key: 'speed', classes: ['slow', 'fast'] },
];

function groups(): AttributeGroup[] {
  const out: AttributeGroup[] = [];
  let offset = 0;
  const add = (name: string, classes: readonly string[]): void => {
    out.push({ name, classes, offset });
    offset += classes.length;
  };
  for (const k of [1, 2]) for (const f of OBJECT_FIELDS) add(`object${k}.${f.key}`, f.classes);
  add('objects', ['1', '2']);
  add('background', COLOURS);
  add('camera', ['none', 'left', 'right']);
  return out;
}

/** The attribute groups in column order. */
export const CAPTION_ATTRIBUTE_GROUPS: readonly AttributeGroup[] = groups();

/** Width of a targets row (the sum of the groups' class counts). */
export const CAPTION_ATTRIBUTE_CLASSES = CAPTION_ATTRIBUTE_GROUPS.reduce((n, g) => n + g.classes.length, 0);

/**
 * The caption's targets row: 1 at the class of every group the caption names (as parsePrompt reads it), 0
 * elsewhere. A caption with no object (e.g. the empty prompt) names nothing; one that names objects always
 * names the camera ("none" unless it says the camera pans).
 */
export function captionAttributeTargets(caption: string): Float32Array {
  const row = new Float32Array(CAPTION_ATTRIBUTE_CLASSES);
  const parsed = parsePrompt(caption);
  const objects = parsed.objects.slice(0, 2);
  if (objects.length === 0) return row;
  const set = (name: string, value: string | undefined): void => {
    if (value === undefined) return;
    const g = CAPTION_ATTRIBUTE_GROUPS.find((x) => x.name === name)!;
    const i = g.classes.indexOf(value);
    if (i < 0)
      throw new KinemaError('WORLD_BAD_SCENE', `captionAttributeTargets: ${name} has no class '${value}'`);
    row[g.offset + i] = 1;
  };
  objects.forEach((o, k) => {
    for (const f of OBJECT_FIELDS) set(`object${k + 1}.${f.key}`, o[f.key]);
  });
  set('objects', String(objects.length));
  set('background', parsed.background);
  set('camera', parsed.cameraPan ?? 'none');
  return row;
}
