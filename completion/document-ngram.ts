// The n-gram of the document being written, kept up to the cursor as the user types, for the mixture.
import { DOCUMENT_NGRAM_WINDOW, documentNgram } from '../model/mixture';
import type { NgramModel } from '../model/ngram';
import { characterStart, type Vocabulary } from '../model/vocab';

/**
 * Typing at the end adds only the characters typed since the last request; an edit further back,
 * or a jump, rebuilds from at most DOCUMENT_NGRAM_WINDOW characters before the cursor, so no
 * request costs more than that whatever the document's size.
 */
export class DocumentNgram {
  model: NgramModel;
  private start = 0;
  private indexed = '';

  constructor(private readonly vocabulary: Vocabulary) {
    this.model = documentNgram(vocabulary.size);
  }

  update(text: string, cursor: number): void {
    const upTo = this.start + this.indexed.length;
    if (
      cursor >= upTo &&
      cursor - this.start <= 2 * DOCUMENT_NGRAM_WINDOW &&
      text.startsWith(this.indexed, this.start)
    ) {
      if (cursor === upTo) return;
      const contextStart = Math.max(this.start, upTo - (this.model.order - 1));
      const context = this.vocabulary.encode(text.slice(contextStart, upTo));
      const added = this.vocabulary.encode(text.slice(upTo, cursor));
      const ids = new Int32Array(context.length + added.length);
      ids.set(context);
      ids.set(added, context.length);
      this.model.add(ids, context.length);
      this.indexed = text.slice(this.start, cursor);
      return;
    }
    const start = characterStart(text, Math.max(0, cursor - DOCUMENT_NGRAM_WINDOW));
    this.model = documentNgram(this.vocabulary.size);
    this.start = start;
    this.indexed = text.slice(start, cursor);
    this.model.add(this.vocabulary.encode(this.indexed));
  }
}
