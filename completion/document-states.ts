// The model state along one document, cached so that a keystroke feeds only the characters typed since the last
// request.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Predictor, Snapshot } from '../model/predictor';
import { characterStart } from '../model/vocab';
import type { Completion } from './options';

/** How far back a cold start reads, and how far the cache may run ahead of a fresh start (UTF-16 units). */
export const COLD_CONTEXT_CHARS = 256;
export const MAX_CACHED_CHARS = 8192;
const CHECKPOINT_EVERY = 32;
/**
 * Steps between turns of the event loop while feeding. On wasm a step's await resolves without
 * one, so a $/cancelRequest or a newer request could not even be read until a cold start of
 * COLD_CONTEXT_CHARS steps was over.
 */
const YIELD_EVERY = 16;

/** Told of a character about to be fed: the snapshot before it, its id, its offset in the text, and the character. */
export type FeedListener = (before: Snapshot, id: number, offset: number, char: string) => void;

/**
 * The model state along one document. Feeding starts at an anchor offset; a request rewinds to
 * the last checkpoint inside the text that is unchanged since, and feeds the rest. A keystroke
 * costs one step however long the document is, and a cold start at most COLD_CONTEXT_CHARS.
 */
export class DocumentStates {
  private anchor = -1;
  /** The text fed since the anchor. */
  private fed = '';
  /** Snapshots after feeding fed.slice(0, length), in increasing length; the first is the start. */
  private checkpoints: Array<{ length: number; snapshot: Snapshot }> = [];
  private last: Snapshot | undefined;
  /** The states along the last completion offered, keyed by its end offset in UTF-16 units after fed.slice(0, from). */
  private ahead: { from: number; text: string; byEnd: Map<number, Snapshot> } | undefined;

  constructor(private readonly predictor: Predictor) {}

  /** Requests for one document take turns: a step awaits the backend, and two must not interleave. */
  private turn: Promise<unknown> = Promise.resolve();
  /**
   * Remembers the states that beam search computed along a completion offered at `cursor`, so
   * that accepting it, or typing it out, costs no model steps: right after Tab, the next request
   * would otherwise feed the whole accepted text one step at a time before it could search.
   */
  expect(cursor: number, completion: Completion): void {
    this.turn = this.turn.then(() => this.remember(cursor, completion));
  }

  private remember(cursor: number, completion: Completion): void {
    if (!completion.path || this.anchor < 0 || cursor !== this.anchor + this.fed.length) return;
    const byEnd = new Map<number, Snapshot>();
    let end = 0;
    let i = 0;
    for (const char of completion.text) {
      const snapshot = completion.path[i++];
      if (!snapshot) break;
      end += char.length;
      byEnd.set(end, snapshot);
    }
    this.ahead = { from: this.fed.length, text: completion.text, byEnd };
  }

  /**
   * The snapshot after text.slice(0, cursor); undefined if cancelled on the way. `beforeEach` hears
   * of each character fed, at its offset, with the snapshot before it.
   */
  at(
    text: string,
    cursor: number,
    cancelled: () => boolean = () => false,
    beforeEach?: FeedListener,
  ): Promise<Snapshot | undefined> {
    const result = this.turn.then(() => this.advance(text, cursor, cancelled, beforeEach));
    this.turn = result.catch(() => undefined);
    return result;
  }

  private async advance(
    text: string,
    cursor: number,
    cancelled: () => boolean,
    beforeEach?: FeedListener,
  ): Promise<Snapshot | undefined> {
    if (this.anchor < 0 || this.anchor > cursor || cursor - this.anchor > MAX_CACHED_CHARS)
      await this.restart(text, cursor);
    let same = 0;
    const limit = Math.min(this.fed.length, cursor - this.anchor);
    while (same < limit && this.fed.charCodeAt(same) === text.charCodeAt(this.anchor + same)) same++;
    if (this.ahead && same < this.ahead.from) this.ahead = undefined;
    if (same < this.fed.length) {
      while (this.checkpoints.length > 1 && this.checkpoints[this.checkpoints.length - 1].length > same)
        this.checkpoints.pop();
      const checkpoint = this.checkpoints[this.checkpoints.length - 1];
      this.fed = this.fed.slice(0, checkpoint.length);
      this.last = checkpoint.snapshot;
    }
    const vocabulary = this.predictor.vocabulary;
    let i = this.anchor + this.fed.length;
    for (let steps = 0; i < cursor; steps++) {
      if (steps % YIELD_EVERY === YIELD_EVERY - 1) await nextTurn();
      if (cancelled()) return undefined;
      const code = text.codePointAt(i)!;
      const char = String.fromCodePoint(code);
      const id = vocabulary.id(char);
      beforeEach?.(this.last!, id, i, char);
      const ahead = this.ahead;
      const k = ahead ? this.fed.length - ahead.from : -1;
      let known: Snapshot | undefined;
      if (ahead && k >= 0) {
        known = ahead.text.startsWith(char, k) ? ahead.byEnd.get(k + char.length) : undefined;
        if (!known) this.ahead = undefined;
      }
      this.last = known ?? (await this.predictor.step([this.last!.state], [id]))[0];
      this.fed += char;
      i += char.length;
      if (this.fed.length - this.checkpoints[this.checkpoints.length - 1].length >= CHECKPOINT_EVERY) {
        this.checkpoints.push({ length: this.fed.length, snapshot: this.last });
      }
    }
    return this.last;
  }

  private async restart(text: string, cursor: number): Promise<void> {
    const anchor = characterStart(text, Math.max(0, cursor - COLD_CONTEXT_CHARS));
    this.anchor = anchor;
    this.fed = '';
    this.ahead = undefined;
    // Every start reads as if after a line break, as most text in notes does.
    this.last = (await this.predictor.step([this.predictor.zeroState()], [this.predictor.vocabulary.id('\n')]))[0];
    this.checkpoints = [{ length: 0, snapshot: this.last }];
  }
}
