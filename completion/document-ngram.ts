// The n-grams of the document being written, kept up to the cursor as the user types, for the mixture: of its text, and
// of its paragraphs' openers.
import { DOCUMENT_NGRAM_WINDOW, documentNgram, OPENER_NGRAM_ORDER, openerNgram } from '../model/mixture';
import type { NgramModel } from '../model/ngram';
import { OpenerReader } from '../model/paragraph-openers';
import { characterStart, type Vocabulary } from '../model/vocab';

/**
 * Typing at the end adds only the characters typed since the last request; an edit further back,
 * or a jump, rebuilds from at most DOCUMENT_NGRAM_WINDOW characters before the cursor, so no
 * request costs more than that whatever the document's size.
 */
export class DocumentNgram {
  model: NgramModel;
  openers: NgramModel;
  private start = 0;
  private indexed = '';
  private readonly reader: OpenerReader;
  /** Where the indexed text stands among its paragraphs' openers. */
  private readonly readerSlot: Float32Array;

  constructor(private readonly vocabulary: Vocabulary) {
    this.model = documentNgram(vocabulary.size);
    this.openers = openerNgram(vocabulary.size);
    this.reader = new OpenerReader(vocabulary, OPENER_NGRAM_ORDER - 1);
    this.readerSlot = new Float32Array(this.reader.size);
    this.reader.start(this.readerSlot);
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
      this.readOpeners(added);
      this.indexed = text.slice(this.start, cursor);
      return;
    }
    const start = characterStart(text, Math.max(0, cursor - DOCUMENT_NGRAM_WINDOW));
    this.model = documentNgram(this.vocabulary.size);
    this.openers = openerNgram(this.vocabulary.size);
    // The document's start is a paragraph's; a window's start, inside one, is not.
    if (start === 0) this.reader.start(this.readerSlot);
    else this.readerSlot.fill(0);
    this.start = start;
    this.indexed = text.slice(start, cursor);
    const ids = this.vocabulary.encode(this.indexed);
    this.model.add(ids);
    this.readOpeners(ids);
  }

  /** Reads ids that follow the text indexed so far, and counts the openers they complete or begin. */
  private readOpeners(ids: Int32Array): void {
    const sequence = Array.from(this.reader.tail(this.readerSlot));
    const context = sequence.length;
    for (const id of ids) this.reader.read(this.readerSlot, id, (opener) => sequence.push(opener));
    if (sequence.length > context) this.openers.add(sequence, context);
  }
}
