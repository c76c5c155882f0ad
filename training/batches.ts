// Truncated backpropagation through time over contiguous streams, the char-rnn way. The text is
// cut into batchSize streams laid side by side; consecutive batches walk down every stream in
// step, so the LSTM state left at the end of batch k is the right starting state for batch k+1
// and the model learns dependencies longer than seqLength.

function checkPositiveInteger(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`batches: ${name} must be a positive integer, got ${value}`);
  }
}

export class StreamBatcher {
  readonly batchSize: number;
  readonly seqLength: number;
  readonly batchesPerEpoch: number;
  /** Code points per stream actually used as inputs: batchesPerEpoch * seqLength. */
  readonly streamLength: number;
  private readonly ids: Int32Array;

  constructor(ids: Int32Array, batchSize: number, seqLength: number) {
    checkPositiveInteger('batchSize', batchSize);
    checkPositiveInteger('seqLength', seqLength);
    // One extra id is needed because the last input of the last stream still needs a target.
    const needed = batchSize * seqLength + 1;
    this.batchesPerEpoch = Math.floor((ids.length - 1) / (batchSize * seqLength));
    if (!(this.batchesPerEpoch >= 1)) {
      throw new Error(
        `batches: text too short for batchSize ${batchSize} and seqLength ${seqLength}: ` +
          `need at least ${needed} chars, got ${ids.length}`,
      );
    }
    this.batchSize = batchSize;
    this.seqLength = seqLength;
    // Streams are packed back to back, so together they cover one contiguous prefix of the text
    // and only the final remainder (fewer than batchSize * seqLength chars) goes unused.
    this.streamLength = this.batchesPerEpoch * seqLength;
    this.ids = ids;
  }

  /** Row-major [batchSize, seqLength] inputs and next-character targets for batch k of epoch `epoch`. */
  batch(k: number, epoch = 0): { inputs: Int32Array; targets: Int32Array } {
    if (!Number.isInteger(k) || k < 0 || k >= this.batchesPerEpoch) {
      throw new RangeError(`batches: batch index ${k} is outside 0..${this.batchesPerEpoch - 1}`);
    }
    const { batchSize, seqLength, streamLength, ids } = this;
    const shift = epochShift(epoch, streamLength);
    const inputs = new Int32Array(batchSize * seqLength);
    const targets = new Int32Array(batchSize * seqLength);
    for (let b = 0; b < batchSize; b++) {
      const stream = b * streamLength;
      for (let j = 0; j < seqLength; j++) {
        const at = k * seqLength + j;
        inputs[b * seqLength + j] = ids[stream + shiftedPosition(at, shift, streamLength)];
        targets[b * seqLength + j] = ids[stream + shiftedPosition(at + 1, shift, streamLength)];
      }
    }
    return { inputs, targets };
  }
}

/**
 * How far each stream is turned round in epoch `epoch`: not at all in the first, and by a different amount in each
 * later one, so that a run reading the text many times does not cut it into the same windows and take them in the
 * same order every time (docs/measurements.md has the A/B). torch_engine.py's epoch_shift is the same.
 */
export function epochShift(epoch: number, streamLength: number): number {
  if (epoch === 0 || streamLength < 2) return 0;
  return 1 + ((Math.imul(epoch, 0x9e3779b1) >>> 0) % (streamLength - 1));
}

/**
 * Where position `at` (0 to streamLength) of a stream turned round by `shift` lies in the stream as written: the
 * stream from `shift` on, then from its second position, so that every position but the first is a target once.
 */
function shiftedPosition(at: number, shift: number, streamLength: number): number {
  const from = shift + at;
  return from > streamLength ? from - streamLength : from;
}
