// The online stages' weights carried from one document to the next. A new document's online stage and last stage
// start from the weights of the document that taught them last, rather than from the trained mixture alone: how far to
// trust each part where is much the same from note to note, and a short note would otherwise spend most of its length
// learning it again. What the weights hold is how the parts are mixed, not the text that taught them.
import type { BitwiseMixer } from './bitwise-mixer';
import type { OnlineMixer } from './online-mixer';

export class CarriedMixing {
  private online?: OnlineMixer;
  private lastStage?: BitwiseMixer;

  /** A document's stages have just learnt a character: theirs are the weights a new document starts from now. */
  taughtBy(online: OnlineMixer, lastStage: BitwiseMixer | undefined): void {
    this.online = online;
    this.lastStage = lastStage ?? this.lastStage;
  }

  /** Starts a new document's online stage. */
  startOnline(mixer: OnlineMixer): void {
    if (this.online && this.online !== mixer) mixer.startFrom(this.online);
  }

  /** Starts a new document's last stage. */
  startLastStage(mixer: BitwiseMixer): void {
    if (this.lastStage && this.lastStage !== mixer) mixer.startFrom(this.lastStage);
  }
}
