// One completion from a model state, by beam search or sampling, and the trainer's closing sample.
import type { Predictor, Snapshot } from '../model/predictor';
import { COMPLETION_DEFAULTS, Completion, CompletionOptions, CompletionSite } from './options';
import { beamSearch } from './beam-search';
import { sample } from './sampling';
import { DocumentStates } from './document-states';

/**
 * Completes from a snapshot by beam search or sampling; undefined when nothing is confident enough.
 */
export async function complete(
  predictor: Predictor,
  start: Snapshot,
  options: CompletionOptions,
  cancelled: () => boolean = () => false,
  site: CompletionSite = {},
): Promise<Completion | undefined> {
  const found = await (options.mode === 'beam'
    ? beamSearch(predictor, start, options, cancelled, site)
    : sample(predictor, start, options, cancelled, site));
  if (!found || found.text.length === 0 || found.confidence < options.minConfidence) return undefined;
  return found;
}

/** Continues prompt by up to length characters, sampled at temperature, as the trainer's closing sample. */
export async function generate(
  predictor: Predictor,
  prompt: string,
  length: number,
  temperature: number,
  seed: number,
): Promise<string> {
  const start = (await new DocumentStates(predictor).at(prompt, prompt.length))!;
  const options: CompletionOptions = {
    ...COMPLETION_DEFAULTS,
    mode: 'sample',
    stopAt: 'none',
    maxChars: length,
    temperature,
    topK: 0,
    topP: 1,
    minConfidence: 0,
    seed,
  };
  return (await complete(predictor, start, options))?.text ?? '';
}
