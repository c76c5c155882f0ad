// Scores text the way a user meets it: each document typed from its start through a completion session, so that every
// online part (the document's n-grams, the match model, the online stage) has read exactly what came before, and each
// document, once finished, learnt into the notes' n-gram as saving it would.
import type { ServedModel } from '../model/served';
import { CompletionSession } from './session';

export interface TypedScore {
  /** Summed negative log-likelihood in nats, of the characters the vocabulary holds and of the unknown symbol. */
  nats: number;
  chars: number;
  /** Characters outside the vocabulary, which the nats above price only as the unknown symbol. */
  unknown: string[];
}

export interface ScoreOptions {
  /** False: the gate's mixture alone, without the match model and the online stage. */
  online?: boolean;
  /** Learn each document into the notes' n-gram once it is scored, as learning from saves does. */
  learnFromSaves?: boolean;
  onProgress?: (done: number) => void;
}

export async function scoreAsTyped(
  model: ServedModel,
  documents: string[],
  { online = true, learnFromSaves = true, onProgress }: ScoreOptions = {},
): Promise<TypedScore> {
  const vocabulary = model.saved.vocabulary;
  const score: TypedScore = { nats: 0, chars: 0, unknown: [] };
  for (const text of documents) {
    const session = new CompletionSession(model, online);
    let offset = 0;
    for (const char of text) {
      const logProbs = await session.predictAt(text, offset);
      const id = vocabulary.id(char);
      if (id === 0) score.unknown.push(char);
      score.nats -= logProbs![id];
      score.chars++;
      offset += char.length;
      if (score.chars % 1000 === 0) onProgress?.(score.chars);
    }
    if (learnFromSaves && model.hasNotes) model.mixture.notes.add(vocabulary.encode(text));
  }
  return score;
}
