// What the mixture knows of the document being written, kept up to the cursor as the user types: n-grams of its text
// and of its paragraphs' openers, the match model over its text, and the online stage that learns from it.
import {
  DOCUMENT_NGRAM_WINDOW,
  DocumentSource,
  documentNgram,
  newLastStage,
  OPENER_NGRAM_ORDER,
  openerNgram,
} from '../model/mixture';
import { AdaptiveEscape, EscapeModel } from '../model/escape';
import type { BitwiseMixer } from '../model/bitwise-mixer';
import type { CarriedMixing } from '../model/carried-mixing';
import type { ContextMixingModel } from '../model/context-mixing';
import { AboveModel } from '../model/line-above';
import { EchoConfidence } from '../model/token-echo';
import { MatchModel } from '../model/match-model';
import type { NgramModel } from '../model/ngram';
import { OnlineMixer } from '../model/online-mixer';
import { OpenerReader } from '../model/paragraph-openers';
import { WordModel, wordLetters } from '../model/word-model';
import { characterStart, lastCodePointOf, type Vocabulary } from '../model/vocab';

/**
 * The document's context mixing starts with a table of 64 × 2^this bytes (2 MB). Each context it learns
 * brings what the notes knew of it, so it holds the notes' contexts around the document's as well
 * as the document's own, and pays for more room than a table of the document's alone did.
 */
const DOCUMENT_CONTEXTS_TABLE_BITS = 15;
/**
 * Once a document has taught its table as many characters as the table has buckets, it forgets
 * contexts faster than it learns them, so a table this many bits larger is laid over it, up to
 * DOCUMENT_CONTEXTS_MAX_TABLE_BITS (32 MB; the three together 42 MB), which only a document typed
 * on for over 160,000 characters reaches.
 */
const DOCUMENT_CONTEXTS_GROWTH_BITS = 2;
const DOCUMENT_CONTEXTS_MAX_TABLE_BITS = 19;

/** How much of a document the match model follows repeats in, typed on past the n-grams' window. */
export const DOCUMENT_MATCH_MAX_HISTORY = 1_000_000;

/**
 * Typing at the end adds only the characters typed since the last request; an edit further back,
 * or a jump, rebuilds from at most DOCUMENT_NGRAM_WINDOW characters before the cursor, so no
 * request costs more than that whatever the document's size.
 */
export class DocumentNgram implements DocumentSource {
  model: NgramModel;
  openers: NgramModel;
  readonly match?: MatchModel;
  readonly words?: WordModel;
  /** What the document has taught the mixture; it outlives the n-grams' windows, as the document's session does. */
  readonly online?: OnlineMixer;
  private lastStageMixer?: BitwiseMixer;
  private aboveModel?: AboveModel;
  private echoConfidenceCounts?: EchoConfidence;
  /** The context mixing of what the document's user typed, once they begin. */
  contexts?: ContextMixingModel;
  /** The characters outside the vocabulary that the n-grams' window holds, so that completions can name them. */
  escape?: AdaptiveEscape;
  /**
   * Whether what this document teaches the online stages is carried to the next documents, and so kept beside the
   * model: off for a document whose saves would not be learnt either.
   */
  carriesMixing = true;
  private start = 0;
  private indexed = '';
  private readonly reader: OpenerReader;
  /** Where the indexed text stands among its paragraphs' openers. */
  private readonly readerSlot: Float32Array;

  /** Where the document learns its own contexts (DocumentSource.startContexts): begun, or grown, as it needs. */
  startContexts(notes: ContextMixingModel): ContextMixingModel {
    const contexts = (this.contexts ??= notes.overlay(DOCUMENT_CONTEXTS_TABLE_BITS));
    if (contexts.charactersLearnt >= 2 ** contexts.tableBits && contexts.tableBits < DOCUMENT_CONTEXTS_MAX_TABLE_BITS)
      this.contexts = contexts.overlay(contexts.tableBits + DOCUMENT_CONTEXTS_GROWTH_BITS);
    return this.contexts;
  }

  /** Made when first read, since only a model with a context mixing of its notes reads it. */
  get lastStage(): BitwiseMixer | undefined {
    if (!this.online) return undefined;
    if (!this.lastStageMixer) {
      this.lastStageMixer = newLastStage(this.vocabulary.size);
      this.carried?.startLastStage(this.lastStageMixer);
    }
    return this.lastStageMixer;
  }

  /** Made with the last stage, which alone reads it; it is the document's own, and not carried. */
  get above(): AboveModel | undefined {
    if (!this.online) return undefined;
    return (this.aboveModel ??= new AboveModel(this.vocabulary));
  }

  /** Made with the last stage, which alone reads it; it is the document's own, and not carried. */
  get echoConfidence(): EchoConfidence | undefined {
    if (!this.online) return undefined;
    return (this.echoConfidenceCounts ??= new EchoConfidence(this.vocabulary));
  }

  /**
   * Without `online`, the mixture is the gate's alone, as before the online stage: for comparing the
   * two. `escape` is the model's own, which the document's characters outside the vocabulary refine. The online
   * stages start from the weights `carried` holds, where it holds any.
   */
  constructor(
    private readonly vocabulary: Vocabulary,
    online = true,
    private readonly escapeBase: EscapeModel = EscapeModel.fromVocabulary(vocabulary),
    private readonly carried?: CarriedMixing,
  ) {
    if (online) {
      this.match = new MatchModel();
      this.words = new WordModel(wordLetters(vocabulary));
      this.online = new OnlineMixer(vocabulary.size);
      carried?.startOnline(this.online);
      this.escape = new AdaptiveEscape(escapeBase);
    }
    this.model = documentNgram(vocabulary.size);
    this.openers = openerNgram(vocabulary.size);
    this.reader = new OpenerReader(vocabulary, OPENER_NGRAM_ORDER - 1);
    this.readerSlot = new Float32Array(this.reader.size);
    this.reader.start(this.readerSlot);
  }

  taught(): void {
    if (this.carriesMixing && this.online) this.carried?.taughtBy(this.online, this.lastStageMixer);
  }

  /** The code point just before end, if any: what a completion starting there follows. */
  get lastCodePoint(): number | undefined {
    return lastCodePointOf(this.indexed);
  }

  /** Where the indexed text ends: the next character typed there extends it without a rebuild. */
  get end(): number {
    return this.start + this.indexed.length;
  }

  /** Whether update(text, cursor) would only append what was typed at the end. */
  extends(text: string, cursor: number): boolean {
    return this.withinWindow(cursor) && this.typedOn(text, cursor);
  }

  /** Whether the text indexed is unchanged and the cursor at or past its end. */
  private typedOn(text: string, cursor: number): boolean {
    return cursor >= this.end && text.startsWith(this.indexed, this.start);
  }

  private withinWindow(cursor: number): boolean {
    return cursor - this.start <= 2 * DOCUMENT_NGRAM_WINDOW;
  }

  update(text: string, cursor: number): void {
    const upTo = this.end;
    const typedOn = this.typedOn(text, cursor);
    if (typedOn && this.withinWindow(cursor)) {
      if (cursor === upTo) return;
      const contextStart = Math.max(this.start, upTo - (this.model.order - 1));
      const context = this.vocabulary.encode(text.slice(contextStart, upTo));
      const typed = text.slice(upTo, cursor);
      const added = this.vocabulary.encode(typed);
      const ids = new Int32Array(context.length + added.length);
      ids.set(context);
      ids.set(added, context.length);
      this.model.add(ids, context.length);
      this.match?.append(added);
      this.escape?.learnText(typed, this.lastCodePoint);
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
    if (this.escape) {
      this.escape = new AdaptiveEscape(this.escapeBase);
      this.escape.learnText(this.indexed);
    }
    const ids = this.vocabulary.encode(this.indexed);
    this.model.add(ids);
    // Typing on past the window starts the n-grams afresh, but a repeat of anything earlier is as
    // good a guess as ever: the match model keeps reading on, up to its own bound.
    if (this.match && typedOn && this.match.size + (cursor - upTo) <= DOCUMENT_MATCH_MAX_HISTORY)
      this.match.append(this.vocabulary.encode(text.slice(upTo, cursor)));
    else {
      this.match?.reset();
      this.match?.append(ids);
    }
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
