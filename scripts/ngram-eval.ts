// node dist/ngram-eval.js FILE...: the n-gram model alone: nats/char on a held-out tail, build time, size, query speed.
import * as fs from 'node:fs';
import { NgramModel, NGRAM_MAX_ORDER, type NgramConfidence } from '../model/ngram';
import { loadNgram, saveNgram } from '../model/ngram-format';
import { characterStart, Vocabulary } from '../model/vocab';
import { TRAIN_DEFAULTS } from '../training/defaults';
import { numberFlag, parse, runMain, UsageError } from './cli';

const USAGE = `usage: node dist/ngram-eval.js FILE... [--order N] [--max-nodes N] [--split F] [--vocab N] [--discount-scale F] [--tune] [--save DIR]

--split F           train on the first F of the text, score the rest (default 0.9)
--tune              tune the discount scale on the first fifth of the held-out text
--save DIR          also save, load and time the model in DIR`;

async function main(): Promise<void> {
  const { values, positionals: files } = parse(
    process.argv.slice(2),
    {
      order: { type: 'string' },
      'max-nodes': { type: 'string' },
      split: { type: 'string' },
      vocab: { type: 'string' },
      'discount-scale': { type: 'string' },
      tune: { type: 'boolean' },
      save: { type: 'string' },
    },
    USAGE,
  );
  if (files.length === 0) throw new UsageError(USAGE);
  const flag = (name: string, min: number, max: number, integer: boolean) =>
    numberFlag(values[name as keyof typeof values] as string | undefined, name, min, max, integer, USAGE);
  const flags = {
    split: flag('split', 0.01, 0.99, false),
    vocab: flag('vocab', 2, 65535, true),
    order: flag('order', 1, NGRAM_MAX_ORDER, true),
    maxNodes: flag('max-nodes', 16, 2 ** 31 - 1, true),
    discountScale: flag('discount-scale', 0.01, 10, false),
    tune: values.tune === true,
    save: values.save as string | undefined,
  };
  const text = files.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  const cut = characterStart(text, Math.floor(text.length * (flags.split ?? 0.9)));
  const train = text.slice(0, cut);
  const held = text.slice(cut);
  const vocab = Vocabulary.fromText(train, flags.vocab ?? TRAIN_DEFAULTS.maxVocab, TRAIN_DEFAULTS.minCharCount);
  const trainIds = vocab.encode(train);
  const heldIds = vocab.encode(held);
  const { order, maxNodes, discountScale } = flags;
  const rss0 = process.memoryUsage().rss;

  let t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const model = new NgramModel(vocab.size, { order, maxNodes, discountScale });
  model.add(trainIds);
  const buildMs = performance.now() - t0;
  const buildCpuMs = process.cpuUsage(cpu0).user / 1000;
  const stats = model.stats();
  console.log(
    `train ${trainIds.length} chars, held-out ${heldIds.length}, vocabulary ${vocab.size}, order ${model.order}`,
  );
  console.log(
    `build ${buildMs.toFixed(0)} ms (${buildCpuMs.toFixed(0)} ms CPU); nodes ${stats.nodes} (per order ${stats.perOrder.slice(1).join(' ')}); pruned ${stats.pruned} in ${stats.prunes} prunes`,
  );
  console.log(
    `structure ${(model.memoryBytes() / 2 ** 20).toFixed(1)} MiB; RSS growth ${((process.memoryUsage().rss - rss0) / 2 ** 20).toFixed(1)} MiB`,
  );

  let evalIds = heldIds;
  if (flags.tune) {
    // Tuned on the first fifth of the held-out text, reported on the rest.
    const tuneIds = heldIds.subarray(0, Math.min(100_000, Math.floor(heldIds.length / 5)));
    evalIds = heldIds.subarray(tuneIds.length);
    const before = model.score(evalIds);
    t0 = performance.now();
    const scale = model.tuneDiscountScale(tuneIds);
    console.log(
      `tuned discount scale ${scale} on ${tuneIds.length} chars in ${(performance.now() - t0).toFixed(0)} ms; the rest scored ${(before.nats / before.chars).toFixed(4)} nats/char before`,
    );
  }
  t0 = performance.now();
  const { nats, chars: scored } = model.score(evalIds);
  const scoreMs = performance.now() - t0;
  console.log(
    `held-out ${(nats / scored).toFixed(4)} nats/char (${(nats / scored / Math.LN2).toFixed(4)} bits), scored in ${scoreMs.toFixed(0)} ms`,
  );

  timeDistribution(model, heldIds, 'built');

  if (flags.save) {
    t0 = performance.now();
    saveNgram(flags.save, model, vocab);
    const saveMs = performance.now() - t0;
    t0 = performance.now();
    const loaded = loadNgram(flags.save, vocab)!;
    const loadMs = performance.now() - t0;
    const again = loaded.score(heldIds.subarray(0, 10000)).nats === model.score(heldIds.subarray(0, 10000)).nats;
    const size = fs.statSync(`${flags.save}/ngram.bin`).size;
    console.log(
      `saved ${(size / 2 ** 20).toFixed(1)} MiB in ${saveMs.toFixed(0)} ms; loaded in ${loadMs.toFixed(0)} ms; same scores: ${again}`,
    );
    timeDistribution(loaded, heldIds, 'loaded');
  }
}

/** Consecutive held-out contexts (as a beam or the next keystroke asks), then random ones. */
function timeDistribution(model: NgramModel, heldIds: Int32Array, label: string): void {
  const out = new Float32Array(model.vocabSize);
  const confidence: NgramConfidence = { order: 0, contextCount: 0, successors: 0, seenMass: 0 };
  const span = 40;
  const calls = Math.min(20000, heldIds.length - span);
  for (let i = 0; i < 2000; i++) model.distribution(heldIds.subarray(i, i + span), out, confidence);
  let t0 = performance.now();
  for (let i = 0; i < calls; i++) model.distribution(heldIds.subarray(i, i + span), out, confidence);
  const consecutive = ((performance.now() - t0) / calls) * 1000;
  let seed = 1;
  t0 = performance.now();
  for (let i = 0; i < calls; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const at = seed % (heldIds.length - span);
    model.distribution(heldIds.subarray(at, at + span), out, confidence);
  }
  const random = ((performance.now() - t0) / calls) * 1000;
  console.log(
    `distribution (${label} model) ${consecutive.toFixed(2)} µs/call for consecutive contexts, ${random.toFixed(2)} for random ones (${calls} calls each)`,
  );
}

runMain(main, []);
