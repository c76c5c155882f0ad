// node dist/contexts-eval.js FILE... [--held-out FILE]: the context-mixing model alone, as the trainer
// learns it from the notes, then scoring held-out text while it goes on learning, as a compressor
// does: nats/char, and the time each part took.
import * as fs from 'node:fs';
import { ContextMixingModel } from '../model/context-mixing';
import { contextsTableBits, learnNotesContexts } from '../model/notes-text';
import { characterStart, Vocabulary } from '../model/vocab';
import { TRAIN_DEFAULTS } from '../training/defaults';
import { numberFlag, parse, runMain, UsageError } from './cli';

const USAGE = `usage: node dist/contexts-eval.js FILE... [--held-out FILE] [--split F] [--chars N] [--table-bits N]

--held-out FILE     score this file, learning from all of FILE...; without it, learn the first F of
                    FILE... and score the rest
--split F           the share learnt when there is no --held-out file (default 0.9)
--chars N           score only the first N held-out characters
--table-bits N      a table of 64 × 2^N bytes, instead of the size the trainer picks`;

async function main(): Promise<void> {
  const { values, positionals: files } = parse(
    process.argv.slice(2),
    {
      'held-out': { type: 'string' },
      split: { type: 'string' },
      chars: { type: 'string' },
      'table-bits': { type: 'string' },
    },
    USAGE,
  );
  if (files.length === 0) throw new UsageError(USAGE);
  const flag = (name: 'split' | 'chars' | 'table-bits', min: number, max: number, integer: boolean) =>
    numberFlag(values[name] as string | undefined, name, min, max, integer, USAGE);
  const split = flag('split', 0.01, 0.99, false) ?? 0.9;
  const chars = flag('chars', 1, 2 ** 31 - 1, true);
  const text = files.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  const heldOutFile = values['held-out'] as string | undefined;
  const cut = heldOutFile === undefined ? characterStart(text, Math.floor(text.length * split)) : text.length;
  const train = text.slice(0, cut);
  const held = heldOutFile === undefined ? text.slice(cut) : fs.readFileSync(heldOutFile, 'utf8');
  const vocabulary = Vocabulary.fromText(train, TRAIN_DEFAULTS.maxVocab, TRAIN_DEFAULTS.minCharCount);
  const trainIds = vocabulary.encode(train);
  const heldIds = vocabulary.encode(held).subarray(0, chars);
  const tableBits = flag('table-bits', 10, 24, true) ?? contextsTableBits(trainIds.length);

  let started = performance.now();
  const model = learnNotesContexts(vocabulary, trainIds, tableBits);
  const learnSeconds = (performance.now() - started) / 1000;
  started = performance.now();
  const nats = model.append(heldIds);
  const scoreSeconds = (performance.now() - started) / 1000;
  const outside = heldIds.reduce((n, id) => n + (id === 0 ? 1 : 0), 0);
  console.log(
    `learnt ${trainIds.length.toLocaleString('en-US')} chars in ${learnSeconds.toFixed(1)} s (vocabulary ${vocabulary.size}, ` +
      `table ${(ContextMixingModel.tableBytes(tableBits) / 2 ** 20).toFixed(2)} MiB)`,
  );
  console.log(
    `held-out ${(nats / heldIds.length).toFixed(4)} nats/char (${(nats / heldIds.length / Math.LN2).toFixed(4)} bits) ` +
      `over ${heldIds.length.toLocaleString('en-US')} chars, ${outside} outside the vocabulary scored as one symbol; ` +
      `${scoreSeconds.toFixed(1)} s`,
  );
}

runMain(main, []);
