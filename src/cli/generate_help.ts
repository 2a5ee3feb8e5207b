// The part of `kinema generate --help` after the option list: the size rule, the sampler, the memory guard,
// the output naming, and what the shipped default model understands (its world's vocabulary, one example per
// attribute), since a new user's first prompt is otherwise a guess.
import { COLOURS, MOTIONS, SHAPES } from '../training/data/world.js';

export function generateHelpText(): string {
  return `
Size and sampler:
  --width and --height must be multiples of the model's VAE factor (8 for the default model, which is
  trained at 64×64, 16 frames, 8 fps). The sampler is the model's scheduler_config.json (DDIM for the default
  model, 25 steps); --scheduler ddim|ddpm|dpm overrides it.
Memory:
  The run's peak memory is estimated from the configs before any weight loads; a run above --max-memory
  (default: 80 % of the memory available now) is refused with the estimate, instead of being killed later.
Output:
  The extension picks the format: .mp4 .webm .gif .webp, or a path ending in / (or without an extension) for a
  folder of PNG frames. --format must agree with the extension. Files are written under a temporary name and
  renamed when complete, so -o never holds half a video.
What the default model knows (its procedural world; other words are ignored, with a note):
  shapes       ${SHAPES.join(', ')}
               e.g. "a star moves left on a black background"
  colours      ${COLOURS.join(', ')}
               e.g. "a green circle moves up on a white background"
  motions      ${MOTIONS.join(', ')}
               e.g. "a red square bounces on a blue background"
  size, speed  small, large; slowly, quickly
               e.g. "a large yellow ring moves right quickly on purple"
  backgrounds  solid, gradient, stripes, checkerboard
               e.g. "a cyan cross spins on red and white stripes"
  two objects  e.g. "a red circle moves left and a blue square moves right on black"
Examples:
  kinema generate "a yellow star bounces on a red and white checkerboard" --seed 3 -o star.mp4
  kinema generate "a red circle moves left on a blue background" --long vidrd --frames 64 -o long.mp4
  kinema generate "a pink ring orbits on a black background" --format png -o frames/
`;
}
