// The online stages' weights carried from one document to the next. A new document's online stage and last stage
// start from the weights of the document that taught them last, rather than from the trained mixture alone: how far to
// trust each part where is much the same from note to note, and a short note would otherwise spend most of its length
// learning it again. What the weights hold is how the parts are mixed, not the text that taught them.
//
// They are kept beside the model, so that the next session of the editor starts where this one left off rather than
// from the trained mixture: a language server is started afresh with every window, and ends when idle. The file names
// the LSTM's weights it was learnt with, since a retrained model's parts deserve another mix.
import * as os from 'node:os';
import * as path from 'node:path';
import { BitwiseMixer, LAST_STAGE_INPUTS } from './bitwise-mixer';
import {
  bytesOfArrays,
  contentHash,
  fillArrays,
  ModelFormatError,
  readJsonHeader,
  readRegularFile,
  writeHeadedFile,
} from './files';
import { vocabularyHash } from './ngram-format';
import { ONLINE_INPUTS, OnlineMixer } from './online-mixer';
import type { Vocabulary } from './vocab';

export const CARRIED_MIXING_FILE = 'carried-mixing.bin';
const FORMAT = 'char-carried-mixing';
const FORMAT_VERSION = 1;
const MAX_HEADER_BYTES = 4096;
/** Far more than the weights of any vocabulary the trainer keeps. */
const MAX_FILE_BYTES = 16 << 20;

/** The model the weights mix the parts of: its directory, the LSTM's weights file (named by their content), its vocabulary. */
export interface MixedModel {
  dir: string;
  weightsFile: string;
  vocabulary: Vocabulary;
}

interface CarriedHeader {
  format: string;
  formatVersion: number;
  weightsFile: string;
  vocabularySha256: string;
  /** The inputs each stage mixes, in the order of its weights: what the weights mean. */
  onlineInputs: string[];
  lastStageInputs: string[] | null;
  /** Of each array, in weightArrays() order: the online stage's, then the last stage's. */
  lengths: number[];
  /** The first 12 hex digits of the payload's SHA-256. */
  payloadHash: string;
}

export class CarriedMixing {
  private online?: OnlineMixer;
  private lastStage?: BitwiseMixer;
  /** Whether a document has taught the weights since they were loaded or last saved. */
  private unsaved = false;

  constructor(private readonly model?: MixedModel) {}

  /** A document's stages have just learnt a character: theirs are the weights a new document starts from now. */
  taughtBy(online: OnlineMixer, lastStage: BitwiseMixer | undefined): void {
    this.online = online;
    this.lastStage = lastStage ?? this.lastStage;
    this.unsaved = true;
  }

  /** Starts a new document's online stage. */
  startOnline(mixer: OnlineMixer): void {
    if (this.online && this.online !== mixer) mixer.startFrom(this.online);
  }

  /** Starts a new document's last stage. */
  startLastStage(mixer: BitwiseMixer): void {
    if (this.lastStage && this.lastStage !== mixer) mixer.startFrom(this.lastStage);
  }

  /**
   * Keeps the weights in the model's directory, atomically, where a document has taught them since
   * they were loaded or last kept; returns whether it wrote. Throws where the file cannot be written.
   */
  save(): boolean {
    if (!this.model || !this.online || !this.unsaved) return false;
    const arrays = [...this.online.weightArrays(), ...(this.lastStage?.weightArrays() ?? [])];
    const payload = bytesOfArrays(arrays);
    const header: CarriedHeader = {
      format: FORMAT,
      formatVersion: FORMAT_VERSION,
      weightsFile: this.model.weightsFile,
      vocabularySha256: vocabularyHash(this.model.vocabulary),
      onlineInputs: [...ONLINE_INPUTS],
      lastStageInputs: this.lastStage ? [...LAST_STAGE_INPUTS] : null,
      lengths: arrays.map((array) => array.length),
      payloadHash: contentHash(payload),
    };
    writeHeadedFile(this.model.dir, CARRIED_MIXING_FILE, header, payload);
    this.unsaved = false;
    return true;
  }

  /**
   * The weights kept in `model`'s directory, where they were learnt with this model, filling
   * `fresh` (new stages for its vocabulary); else nothing carried, and `problem` says why where a
   * file was there but could not be used (it is replaced at the next save).
   */
  static load(
    model: MixedModel,
    fresh: { online: OnlineMixer; lastStage: BitwiseMixer },
  ): { carried: CarriedMixing; problem?: string } {
    const carried = new CarriedMixing(model);
    try {
      const read = carried.read(fresh);
      if (read !== 'nothing') carried.online = fresh.online;
      if (read === 'both stages') carried.lastStage = fresh.lastStage;
      return { carried };
    } catch (error) {
      if (!(error instanceof ModelFormatError)) throw error;
      return {
        carried,
        problem: `${error.message}; new documents start from the trained mixture, and the weights are kept afresh`,
      };
    }
  }

  /**
   * Fills `fresh` from the file, the last stage only where a model with one kept it; nothing where
   * there is no file or it was learnt with another model.
   */
  private read(fresh: { online: OnlineMixer; lastStage: BitwiseMixer }): 'nothing' | 'online stage' | 'both stages' {
    const { dir, weightsFile, vocabulary } = this.model!;
    const fail = (problem: string) =>
      new ModelFormatError(`the mixing carried from earlier sessions in ${dir}: ${problem}`);
    const bytes = readRegularFile(path.join(dir, CARRIED_MIXING_FILE), MAX_FILE_BYTES, fail);
    if (!bytes) return 'nothing';
    if (os.endianness() !== 'LE') throw fail('it is laid out little-endian and this host is not');
    const { json, end } = readJsonHeader(
      (offset, length) => bytes.subarray(offset, offset + length),
      bytes.length,
      MAX_HEADER_BYTES,
      CARRIED_MIXING_FILE,
      'carried mixing',
      fail,
    );
    const header = json as Partial<CarriedHeader> | null;
    if (header?.format !== FORMAT || header.formatVersion !== FORMAT_VERSION)
      throw fail(`${CARRIED_MIXING_FILE} is not carried mixing of version ${FORMAT_VERSION}`);
    // A model trained again, or a program that mixes other parts: the weights mean nothing to it.
    if (
      header.weightsFile !== weightsFile ||
      header.vocabularySha256 !== vocabularyHash(vocabulary) ||
      JSON.stringify(header.onlineInputs) !== JSON.stringify(ONLINE_INPUTS) ||
      (header.lastStageInputs !== null && JSON.stringify(header.lastStageInputs) !== JSON.stringify(LAST_STAGE_INPUTS))
    )
      return 'nothing';
    const arrays = [...fresh.online.weightArrays(), ...(header.lastStageInputs ? fresh.lastStage.weightArrays() : [])];
    // Weight sets selected by other contexts, as a program that selects them otherwise keeps them: they mean nothing here either.
    if (JSON.stringify(header.lengths) !== JSON.stringify(arrays.map((array) => array.length))) return 'nothing';
    const payload = bytes.subarray(end);
    if (payload.length !== arrays.reduce((sum, array) => sum + array.byteLength, 0))
      throw fail(`${CARRIED_MIXING_FILE} is cut short or overlong: it holds other than the weights its header lists`);
    if (contentHash(payload) !== header.payloadHash)
      throw fail(`${CARRIED_MIXING_FILE} is corrupt: its contents do not match their checksum`);
    fillArrays(arrays, payload);
    if (arrays.some((array) => array.some((weight) => !Number.isFinite(weight))))
      throw fail(`${CARRIED_MIXING_FILE} holds weights that are not numbers`);
    return header.lastStageInputs ? 'both stages' : 'online stage';
  }
}
