// npm run split -- PATH... --out DIR: the trainer's own training/validation split of the notes, written as
// DIR/train.txt and DIR/test.txt, so that other models (scripts/anchors.sh's compressors) score the same text, and the
// files held out one by one in DIR/test/, so that `npm run eval` can type them as the separate notes they are.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorpusDocument, describeExclusions, describeSkipped, loadCorpus } from '../training/corpus';
import { codePointLength } from '../model/vocab';
import { TRAIN_DEFAULTS } from '../training/defaults';
import { splitCorpus } from '../training/split';
import { randomSuffix, replaceAtomically } from '../model/files';
import { parse, runMain, UsageError } from './cli';

const USAGE = `usage: npm run split -- PATH... --out DIR

Reads PATH... as the trainer does and writes its split: DIR/train.txt (the training text) and
DIR/test.txt (the validation text), UTF-8; where whole files are held out, also each of them in
DIR/test/, numbered in the order test.txt joins them.`;

async function main(): Promise<void> {
  const { values, positionals: paths } = parse(process.argv.slice(2), { out: { type: 'string' } }, USAGE);
  const out = values.out as string | undefined;
  if (paths.length === 0 || out === undefined) throw new UsageError(USAGE);
  let corpus;
  try {
    corpus = loadCorpus(paths.map((p) => path.resolve(p)));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  for (const line of [describeExclusions(corpus.excluded, corpus.droppedLines), describeSkipped(corpus.skipped)]) {
    if (line) console.log(line);
  }
  if (corpus.documents.length === 0 || corpus.chars === 0)
    throw new UsageError(`no usable text in ${paths.join(', ')}`);
  const split = splitCorpus(corpus, TRAIN_DEFAULTS.validationFraction);
  fs.mkdirSync(out, { recursive: true });
  replaceAtomically(out, `.train.txt.${randomSuffix()}`, 'train.txt', split.train);
  replaceAtomically(out, `.test.txt.${randomSuffix()}`, 'test.txt', split.validation);
  writeHeldOutFiles(out, split.heldOut);
  console.log(`Validation: ${split.how}`);
  console.log(
    `train.txt ${codePointLength(split.train)} chars, test.txt ${codePointLength(split.validation)} chars (code points), in ${out}`,
  );
}

/** The files held out, each in DIR/test/ as NNN-name, replacing what an earlier split left there. */
function writeHeldOutFiles(out: string, heldOut: CorpusDocument[]): void {
  const dir = path.join(out, 'test');
  fs.rmSync(dir, { recursive: true, force: true });
  if (heldOut.length === 0) return;
  const staging = path.join(out, `.test.${randomSuffix()}`);
  fs.mkdirSync(staging);
  const digits = String(heldOut.length).length;
  heldOut.forEach((document, i) => {
    const name = `${String(i + 1).padStart(digits, '0')}-${path.basename(document.path)}`;
    fs.writeFileSync(path.join(staging, name), document.text);
  });
  fs.renameSync(staging, dir);
  console.log(`${heldOut.length} held-out files, one by one, in ${dir}`);
}

runMain(main, []);
