// One document's completion engine: its model states, its n-gram and the suggestion on show, behind one `suggest` per
// keystroke.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Predictor, Snapshot } from '../model/predictor';
import { completionRevealsSecret } from '../model/secrets';
import { documentPredictor, ServedModel } from '../model/served';
import { withLfLineEnds } from '../model/vocab';
import { complete } from './complete';
import { DocumentNgram } from './document-ngram';
import { DocumentStates } from './document-states';
import {
  type Completion,
  type CompletionOptions,
  type CompletionSite,
  type PassedOver,
  sameSuggestion,
} from './options';

/** How much text before a suggestion must be unchanged for it to count as still on show. */
const SHOWN_CONTEXT_CHARS = 64;

export class CompletionSession {
  private readonly predictor: Predictor;
  private readonly states: DocumentStates;
  private readonly document: DocumentNgram;
  /** The last suggestion, kept while the user types along it. */
  private shown: { offset: number; before: string; completion: Completion } | undefined;

  /** `online` false serves the gate's mixture alone, without the match model and the online stage. */
  constructor(model: ServedModel, online = true) {
    this.document = new DocumentNgram(model.saved.vocabulary, online, model.saved.escape, model.mixture.carriedMixing);
    this.predictor = documentPredictor(model, this.document);
    this.states = new DocumentStates(this.predictor);
  }

  /**
   * The completion at `offset` in `text`, or undefined. A request that is cancelled on the way,
   * even during the last model step, answers undefined and leaves the suggestion on show as it was.
   * `alternativesWanted`: the user asked for the other suggestions here (Alt+] in VS Code).
   */
  async suggest(
    documentText: string,
    documentOffset: number,
    options: CompletionOptions,
    cancelled: () => boolean = () => false,
    alternativesWanted = false,
  ): Promise<Completion | undefined> {
    const { text, offset, crLf } = asLearnt(documentText, documentOffset);
    const lineEnd = text.indexOf('\n', offset);
    const after = text.slice(offset, lineEnd < 0 ? text.length : lineEnd);
    const lineGoesOn = /\S/u.test(after);
    const opensParagraph = after === '' && /[^\n]\n$/u.test(text.slice(Math.max(0, offset - 2), offset));
    // Typing the first character of a suggestion instead of accepting it counts against it, so the
    // search runs again with it demoted; otherwise a suggestion being typed along stays as it is.
    const passedOver = this.passedOver(text, offset);
    const along = passedOver === undefined ? this.typedAlong(text, offset, lineGoesOn, alternativesWanted) : undefined;
    // Asked for the other suggestions, the search runs anyway, and the one on show stays first: the editor takes the
    // first item of the answer for the one it shows, and cycles on to the next.
    const completion =
      along && !alternativesWanted
        ? along
        : shownFirst(
            along,
            await this.search(text, offset, options, cancelled, {
              passedOver,
              lineGoesOn,
              opensParagraph,
              alternativesWanted,
            }),
            options.beamWidth,
          );
    // A cancellation or a newer request may have arrived during the last model step: look once
    // more, and do not answer with a stale suggestion.
    await nextTurn();
    if (cancelled()) return undefined;
    this.shown = completion && { offset, before: this.contextBefore(text, offset), completion };
    if (!completion) return undefined;
    // Nothing to offer when the text after the cursor already says it.
    // Nor anything that would make a line look like a secret: the document's own n-gram has read the lines above,
    // and a model trained before secrets were kept out may know one.
    const offerable = (candidate: string) =>
      !after.startsWith(candidate) && !completionRevealsSecret(text, offset, candidate);
    if (!offerable(completion.text)) return undefined;
    const alternatives = completion.alternatives?.filter((alternative) => offerable(alternative.text));
    const offered = alternatives ? { ...completion, alternatives } : completion;
    return crLf ? withCrLfLineEnds(offered) : offered;
  }

  /** Whether what this document teaches the mixing carries on to the next documents and is kept beside the model. */
  set carriesMixing(carries: boolean) {
    this.document.carriesMixing = carries;
  }

  /** Forgets the suggestion on show, as when the settings that chose it change. */
  forgetShown(): void {
    this.shown = undefined;
  }

  private async search(
    text: string,
    offset: number,
    options: CompletionOptions,
    cancelled: () => boolean,
    site: CompletionSite,
  ): Promise<Completion | undefined> {
    const snapshot = await this.advance(text, offset, cancelled);
    const completion = snapshot && (await complete(this.predictor, snapshot, options, cancelled, site));
    if (completion) this.states.expect(offset, completion);
    return completion;
  }

  /**
   * The snapshot after text.slice(0, offset), with the document's models brought up to the offset.
   * Characters typed at the end are taught to the online stage one by one, each before the
   * document's models have read it, as a compressor would: so it learns how far to trust them on
   * text they have not seen.
   */
  private async advance(text: string, offset: number, cancelled: () => boolean): Promise<Snapshot | undefined> {
    if (!this.document.extends(text, offset)) this.document.update(text, offset);
    const snapshot = await this.states.at(text, offset, cancelled, (before, id, at, char) => {
      if (at !== this.document.end) return;
      this.predictor.observe?.(before, id);
      this.document.update(text, at + char.length);
    });
    this.document.update(text, offset);
    return snapshot;
  }

  /** Whether the model has learning left for idle time. */
  get learningPending(): boolean {
    return this.predictor.adaptationPending ?? false;
  }

  /** Does the next piece of the learning left for idle time; callers that find the user idle still call it while learningPending. */
  learnWhileIdle(): Promise<void> {
    return this.predictor.adaptLstm?.() ?? Promise.resolve();
  }

  /** The next character's log-probabilities at `offset` in `text`, as a completion there would start from them. */
  async predictAt(documentText: string, documentOffset: number): Promise<Float32Array | undefined> {
    const { text, offset } = asLearnt(documentText, documentOffset);
    return (await this.advance(text, offset, () => false))?.logProbs;
  }

  private contextBefore(text: string, offset: number): string {
    return text.slice(Math.max(0, offset - SHOWN_CONTEXT_CHARS), offset);
  }

  /**
   * While the user types along the shown suggestion, the rest of it stays without model work. One
   * typed character goes through passedOver instead; this keeps the suggestion when several arrive
   * at once, as with an editor's accept-next-word, or when requests were skipped while typing fast.
   * A rest that ends the line is searched again where the line has come to go on after the cursor.
   * `orNoneTyped` gives the whole suggestion where nothing of it is typed yet, too.
   */
  private typedAlong(text: string, offset: number, lineGoesOn: boolean, orNoneTyped: boolean): Completion | undefined {
    const last = this.shown;
    if (!last) return undefined;
    const typed = offset - last.offset;
    if (typed < (orNoneTyped ? 0 : 1) || typed >= last.completion.text.length) return undefined;
    if (text.slice(last.offset, offset) !== last.completion.text.slice(0, typed)) return undefined;
    if (this.contextBefore(text, last.offset) !== last.before) return undefined;
    const rest = last.completion.text.slice(typed);
    // A rest of whitespace alone would show nothing, and a Tab would type it unseen.
    if (!/\S/u.test(rest) || (lineGoesOn && rest.endsWith('\n'))) return undefined;
    return { text: rest, confidence: last.completion.confidence };
  }

  /**
   * The rest of the shown suggestion when the user has just typed its first character instead of
   * accepting it, with its probability from there as the search that offered it read it along its
   * path.
   */
  private passedOver(text: string, offset: number): PassedOver | undefined {
    const last = this.shown;
    if (!last || offset !== last.offset + 1 || last.completion.text.length < 2) return undefined;
    if (text.slice(last.offset, offset) !== last.completion.text.slice(0, 1)) return undefined;
    if (this.contextBefore(text, last.offset) !== last.before) return undefined;
    const [, ...rest] = last.completion.text;
    const path = last.completion.path ?? [];
    if (path.length < rest.length) return { text: rest.join('') };
    const vocabulary = this.predictor.vocabulary;
    let logP = 0;
    rest.forEach((char, i) => (logP += path[i].logProbs[vocabulary.id(char)]));
    return { text: rest.join(''), logP };
  }
}

/**
 * The suggestion on show, where there is one, then the search's suggestions that say something else, so that there
 * are at most as many as the beam is wide; else what the search found.
 */
function shownFirst(
  shown: Completion | undefined,
  found: Completion | undefined,
  width: number,
): Completion | undefined {
  if (!shown || !found) return shown ?? found;
  const others = [found, ...(found.alternatives ?? [])]
    .filter((other) => !sameSuggestion(other.text, shown.text))
    .slice(0, Math.max(0, width - 1))
    .map(({ text, confidence }) => ({ text, confidence }));
  return { ...shown, alternatives: others };
}

/**
 * A completion found in the text as learnt, with LF, given the CR LF line breaks of the document it is offered in, so
 * that accepting it leaves the document's line ends as they were in any client, not only in one that converts them.
 * Its path is left out: it follows the LF text character by character.
 */
function withCrLfLineEnds(completion: Completion): Completion {
  const crLf = (text: string) => text.replaceAll('\n', '\r\n');
  const offered: Completion = { text: crLf(completion.text), confidence: completion.confidence };
  if (completion.alternatives)
    offered.alternatives = completion.alternatives.map((alternative) => ({
      ...alternative,
      text: crLf(alternative.text),
    }));
  return offered;
}

/**
 * The text with its line breaks as LF, as the notes are learnt, and the offset moved to match: a document whose lines
 * end with CR LF, as on Windows, would otherwise show the model a character it never learnt before every line break.
 * `crLf` says whether it had CR LF line breaks, which a completion offered in it should carry.
 */
function asLearnt(text: string, offset: number): { text: string; offset: number; crLf: boolean } {
  if (!text.includes('\r')) return { text, offset, crLf: false };
  // Between the CR and the LF of one line break is the break's start.
  const at = text[offset - 1] === '\r' && text[offset] === '\n' ? offset - 1 : offset;
  const before = withLfLineEnds(text.slice(0, at));
  return { text: before + withLfLineEnds(text.slice(at)), offset: before.length, crLf: text.includes('\r\n') };
}
