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

  /** Row-major [batchSize, seqLength] inputs and next-character targets for batch k. */
  batch(k: number): { inputs: Int32Array; targets: Int32Array } {
    if (!Number.isInteger(k) || k < 0 || k >= this.batchesPerEpoch) {
      throw new RangeError(`batches: batch index ${k} is outside 0..${this.batchesPerEpoch - 1}`);
    }
    const { batchSize, seqLength, streamLength, ids } = this;
    const inputs = new Int32Array(batchSize * seqLength);
    const targets = new Int32Array(batchSize * seqLength);
    for (let b = 0; b < batchSize; b++) {
      const start = b * streamLength + k * seqLength;
      inputs.set(ids.subarray(start, start + seqLength), b * seqLength);
      targets.set(ids.subarray(start + 1, start + seqLength + 1), b * seqLength);
    }
    return { inputs, targets };
  }
}
