// model_index.json of a diffusers pipeline folder names a class for every component. Kinema implements one
// class per component (a few aliases per scheduler/tokenizer); a folder naming another class would otherwise
// load our class's weights under a different architecture's name, so it is refused up front, naming the
// component and the class (diffusers refuses an unknown class too).
import { ModelLoadError } from '../io/model_folder.js';

export const PIPELINE_CLASSES = ['TextToVideoSDPipeline', 'DualStreamPipeline'] as const;

/** Component name → the class names Kinema can load there. */
export const COMPONENT_CLASSES: Record<string, readonly string[]> = {
  unet: ['UNet3DConditionModel'],
  vae: ['AutoencoderKL'],
  text_encoder: ['CLIPTextModel'],
  tokenizer: ['CLIPTokenizer', 'CLIPTokenizerFast'],
  scheduler: ['DDIMScheduler', 'DDPMScheduler', 'DPMSolverMultistepScheduler'],
  dsdn: ['DualStreamModel'],
};

/** The pipeline class a folder's index names (TextToVideoSDPipeline when it names none). */
export function pipelineClass(index: Record<string, unknown>): (typeof PIPELINE_CLASSES)[number] {
  return index['_class_name'] === 'DualStreamPipeline' ? 'DualStreamPipeline' : 'TextToVideoSDPipeline';
}

/** Checks the index's pipeline and component classes; throws MODEL_UNKNOWN_CLASS naming the first unknown. */
export function checkModelIndex(index: Record<string, unknown>, path: string): void {
  const pipeline = index['_class_name'];
  if (pipeline !== undefined && !(PIPELINE_CLASSES as readonly unknown[]).includes(pipeline)) {
    throw new ModelLoadError(
      `${path}: _class_name ${JSON.stringify(pipeline)} is not a pipeline Kinema implements ` +
        `(${PIPELINE_CLASSES.join(', ')})`,
      'MODEL_UNKNOWN_CLASS',
    );
  }
  for (const [name, known] of Object.entries(COMPONENT_CLASSES)) {
    const entry = index[name];
    if (entry === undefined || entry === null) continue; // a missing component folder is reported when loaded
    const cls = Array.isArray(entry) && entry.length === 2 ? entry[1] : undefined;
    if (typeof cls !== 'string') {
      throw new ModelLoadError(
        `${path}: "${name}" must be ["library", "ClassName"], got ${JSON.stringify(entry)}`,
        'MODEL_UNKNOWN_CLASS',
      );
    }
    if (!known.includes(cls)) {
      throw new ModelLoadError(
        `${path}: component "${name}" is a ${cls}, which Kinema does not implement (it loads ${known.join(' or ')})`,
        'MODEL_UNKNOWN_CLASS',
      );
    }
  }
}
