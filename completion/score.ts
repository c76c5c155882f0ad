// Scores text the way a user meets it: each document typed from its start through a completion session, so that every
// online part (the document's n-grams, the match model, the online stage) has read exactly what came before, and each
// document, once finished, learnt into the notes' n-gram as saving it would.
import type { ServedModel } from '../model/served';
import { AdaptiveEscape } from '../model/escape';
import { readNotes } from '../model/notes-text';
import { CompletionSession } from './session';

export interface TypedScore {
  /**
   * Summed negative log-likelihood in nats. A character outside the vocabulary costs the unknown
   * symbol's share and then its own, spelled out by the escape model, which learns the characters outside the
   * vocabulary that came before (AdaptiveEscape) as it goes.
   */
  nats: number;
  chars: number;
  /** How many characters were outside the vocabulary, and what spelling them out cost (part of nats). */
  unknown: number;
  escapeNats: number;
}

export interface ScoreOptions {
  /** False: the gate's mixture alone, without the match model and the online stage. */
  online?: boolean;
  /** Learn each document into the notes' n-gram once it is scored, as learning from saves does. */
  learnFromSaves?: boolean;
  onProgress?: (done: number) => void;
  /** Each character as it is scored, with what it cost in nats: to see where the bits go. */
  onCharacter?: (char: string, nats: number) => void;
}

export async function scoreAsTyped(
  model: ServedModel,
  documents: string[],
  { online = true, learnFromSaves = true, onProgress, onCharacter }: ScoreOptions = {},
): Promise<TypedScore> {
  const vocabulary = model.saved.vocabulary;
  const score: TypedScore = { nats: 0, chars: 0, unknown: 0, escapeNats: 0 };
  let escape = new AdaptiveEscape(model.saved.escape);
  for (const text of documents) {
    const session = new CompletionSession(model, online);
    if (!learnFromSaves) escape = new AdaptiveEscape(model.saved.escape);
    let offset = 0;
    let previous: number | undefined;
    for (const char of text) {
      const codePoint = char.codePointAt(0)!;
      const logProbs = await session.predictAt(text, offset);
      // As for a typist who pauses now and then: the server learns in the pauses.
      while (session.learningPending) await session.learnWhileIdle();
      const id = vocabulary.id(char);
      let nats = -logProbs![id];
      if (id === 0) {
        const spelled = escape.nats(codePoint, previous);
        score.unknown++;
        score.escapeNats += spelled;
        nats += spelled;
      }
      score.nats += nats;
      onCharacter?.(char, nats);
      if (online) escape.learn(codePoint, previous);
      previous = codePoint;
      score.chars++;
      offset += char.length;
      if (score.chars % 1000 === 0) onProgress?.(score.chars);
    }
    if (learnFromSaves && model.hasNotes) {
      const ids = vocabulary.encode(text);
      model.mixture.notes.add(ids);
      if (model.mixture.notesReaders) readNotes(model.mixture.notesReaders, ids);
    }
  }
  return score;
}
