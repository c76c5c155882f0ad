// The mixture of the LSTM and the n-grams: its gate and the served model's fallbacks (what is learnt from saved notes:
// learned.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tempModelDir } from './support/temp-dirs';
import { join } from 'node:path';
import { Mixer, MixerSamples } from '../model/mixer';
import { documentNgram, GATE_FEATURE, MIXER_SHAPE, mixerPrior, MixturePredictor } from '../model/mixture';
import { NgramModel } from '../model/ngram';
import { saveNgram, NGRAM_FILE } from '../model/ngram-format';
import { saveModel, SavedModel, untrainedMetadata } from '../model/format';
import { parameterShapes } from '../model/architecture';
import { loadServedModel } from '../model/served';
import { Vocabulary } from '../model/vocab';
import { seededRandom } from '../model/random';
import { fitMixture, ngramSamples, setLstmScores } from '../training/mixture-fit';

const K = MIXER_SHAPE.components.length;
const F = MIXER_SHAPE.featureCount;

/** Samples where the n-gram is right wherever it matched a long context, and the LSTM elsewhere. */
function splitExpertise(count: number): MixerSamples {
  const random = seededRandom(3);
  const targetProbs = new Float32Array(count * K);
  const features = new Float32Array(count * F);
  for (let n = 0; n < count; n++) {
    const ngramKnows = random() < 0.5;
    features[n * F] = 1;
    features[n * F + GATE_FEATURE.notesOrder + (ngramKnows ? 8 : 0)] = 1;
    targetProbs[n * K] = ngramKnows ? 0.02 : 0.9;
    targetProbs[n * K + 1] = ngramKnows ? 0.95 : 0.01;
    targetProbs[n * K + 2] = 0.05;
  }
  return { count, targetProbs, features };
}

function meanNats(samples: MixerSamples, component: number): number {
  let total = 0;
  for (let n = 0; n < samples.count; n++) total -= Math.log(samples.targetProbs[n * K + component]);
  return total / samples.count;
}

test('the gate learns which part to trust where, and the mixture beats each part alone', () => {
  const samples = splitExpertise(4000);
  const { mixer, nats } = fitMixture(samples);
  const best = Math.min(meanNats(samples, 0), meanNats(samples, 1), meanNats(samples, 2));
  assert.ok(nats < best, `mixture ${nats} should beat the best part ${best}`);
  const shares = mixer.gate(samples.features.subarray(0, F));
  assert.ok(Math.max(...shares) > 0.8, `a confident gate where one part is right, got ${Array.from(shares)}`);
});

const vocabulary = Vocabulary.fromText("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:'!?\n", 100);

test('a repeated name: the n-gram is right, and the mixture is not worse than the n-gram', () => {
  const text = 'We met Xarquelin at noon. Then Xarquelin left, and Xarquelin came back. '.repeat(30);
  const ids = vocabulary.encode(text);
  const train = ids.subarray(0, Math.floor(ids.length * 0.7));
  const held = ids.subarray(train.length);
  const notes = new NgramModel(vocabulary.size);
  notes.add(train);
  // An LSTM that has learnt nothing: uniform.
  const samples = ngramSamples(held, held.length - 1, notes, vocabulary.size);
  const { nats } = fitMixture(samples);
  assert.ok(nats <= samples.notesNats + 0.02, `mixture ${nats} vs n-gram ${samples.notesNats}`);
  assert.ok(samples.notesNats < 0.5, 'the n-gram has the text by heart');
});

test('a pattern the LSTM learnt and the n-gram never saw: the mixture is not worse than the LSTM', () => {
  const random = seededRandom(7);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const text = Array.from({ length: 6000 }, () => letters[Math.floor(random() * 26)]).join('');
  const ids = vocabulary.encode(text);
  const notes = new NgramModel(vocabulary.size);
  notes.add(vocabulary.encode('a few unrelated words of notes.\n'));
  const samples = ngramSamples(ids, ids.length - 1, notes, vocabulary.size);
  // An LSTM that is sure of every character, as if it had learnt the sequence.
  const target = new Float32Array(ids.length).fill(Math.log(0.9));
  const max = new Float32Array(ids.length).fill(Math.log(0.9));
  setLstmScores(samples, { covered: ids.length - 1, target, max });
  const { nats } = fitMixture(samples);
  assert.ok(nats <= -Math.log(0.9) + 0.02, `mixture ${nats} vs LSTM ${-Math.log(0.9)}`);
});

test('the mixture predictor gives a distribution that sums to 1, and follows the document’s own n-gram', async () => {
  const notes = new NgramModel(vocabulary.size);
  notes.add(vocabulary.encode('the cat sat on the mat.\n'.repeat(20)));
  const mixer = Mixer.fixed(MIXER_SHAPE, [0.2, 0.4, 0.4]);
  const document = { model: documentNgram(vocabulary.size) };
  const predictor = new MixturePredictor({ vocabulary, notes, mixer }, document);
  const step = async (text: string) => {
    let state = predictor.zeroState();
    let logProbs: Float32Array = new Float32Array();
    for (const id of vocabulary.encode(text)) ({ state, logProbs } = (await predictor.step([state], [id]))[0]);
    return logProbs;
  };
  const logProbs = await step('the c');
  const total = Array.from(logProbs).reduce((sum, lp) => sum + Math.exp(lp), 0);
  assert.ok(Math.abs(total - 1) < 1e-4, `sums to ${total}`);
  assert.ok(Math.exp(logProbs[vocabulary.id('a')]) > 0.3, 'the notes say "cat"');
  const before = Math.exp((await step('zq'))[vocabulary.id('u')]);
  document.model.add(vocabulary.encode('zqu zqu zqu zqu '));
  const after = Math.exp((await step('zq'))[vocabulary.id('u')]);
  assert.ok(after > before + 0.2, `the document's n-gram moves the mixture: ${before} → ${after}`);
});

function savedModel(): SavedModel {
  const config = { vocabSize: vocabulary.size, embed: 4, hidden: 8, layers: 1 };
  const random = seededRandom(1);
  const weights = new Map(
    parameterShapes(config).map(([name, shape]) => [
      name,
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random() - 0.5),
    ]),
  );
  return {
    config,
    vocabulary,
    weights,
    metadata: untrainedMetadata('cpu'),
  };
}

/** Whether a served model mixes with an empty notes' n-gram and the prior gate, as a model without an n-gram of its notes does. */
function servesWithoutNotes(served: ReturnType<typeof loadServedModel>): boolean {
  return (
    !served.hasNotes &&
    served.mixture.notes.size === 1 &&
    served.learned === undefined &&
    served.mixture.lstm === served.lstm &&
    served.mixture.mixer.weights.every((w, i) => w === mixerPrior()[i])
  );
}

test('a model directory from before the mixture serves the mixture with an empty notes’ n-gram and the prior gate', () => {
  const dir = tempModelDir('char-mixture');
  saveModel(dir, savedModel());
  const served = loadServedModel(dir);
  assert.ok(servesWithoutNotes(served));
  assert.deepEqual(served.warnings, []);
  served.dispose();
});

test('a corrupt, missing or mismatched n-gram leaves it out of the mixture with one clear warning', () => {
  const dir = tempModelDir('char-mixture');
  const saved = savedModel();
  const gate = Mixer.fixed(MIXER_SHAPE, [0.5, 0.4, 0.1]);
  saved.metadata.mixer = gate.toJSON();
  saveModel(dir, saved);
  const notes = new NgramModel(vocabulary.size);
  notes.add(vocabulary.encode('some notes to remember.\n'));
  saveNgram(dir, notes, vocabulary);
  const good = loadServedModel(dir);
  assert.ok(good.hasNotes && good.mixture.notes.size > 1, 'with a sound n-gram and gate the mixture serves');
  assert.deepEqual(Array.from(good.mixture.mixer.weights), Array.from(gate.weights));
  assert.deepEqual(good.warnings, []);
  good.dispose();

  const file = join(dir, NGRAM_FILE);
  const bytes = readFileSync(file);
  bytes[bytes.length - 3] ^= 0xff;
  writeFileSync(file, bytes);
  const corrupt = loadServedModel(dir);
  assert.ok(servesWithoutNotes(corrupt));
  assert.equal(corrupt.warnings.length, 1);
  assert.match(corrupt.warnings[0], /n-gram.*serves without/);
  corrupt.dispose();

  saveNgram(
    dir,
    (() => {
      const other = Vocabulary.fromText('xyz', 10);
      const m = new NgramModel(other.size);
      m.add(other.encode('xyzzy'));
      return m;
    })(),
    Vocabulary.fromText('xyz', 10),
  );
  const mismatched = loadServedModel(dir);
  assert.ok(servesWithoutNotes(mismatched));
  assert.match(mismatched.warnings[0], /different vocabulary/);
  mismatched.dispose();

  rmSync(file);
  execFileSync('mkfifo', [file]);
  const fifo = loadServedModel(dir);
  assert.ok(servesWithoutNotes(fifo), 'a FIFO in place of the n-gram is refused, not waited on');
  assert.match(fifo.warnings[0], /not a regular file/);
  fifo.dispose();

  rmSync(file);
  const missing = loadServedModel(dir);
  assert.ok(servesWithoutNotes(missing));
  assert.equal(missing.warnings.length, 1);
  assert.match(missing.warnings[0], /missing/);
  missing.dispose();
});

test('an unusable or missing gate leaves the notes’ n-gram mixed by the prior gate, with one clear warning', () => {
  const dir = tempModelDir('char-mixture');
  const saved = savedModel();
  saved.metadata.mixer = { components: ['lstm', 'notes'], featureCount: 2, weights: [0, 0, 0, 0] };
  saveModel(dir, saved);
  const notes = new NgramModel(vocabulary.size);
  notes.add(vocabulary.encode('some notes to remember.\n'));
  saveNgram(dir, notes, vocabulary);
  for (const [what, problem] of [
    ['unusable', /gate .* is unusable .*prior gate/],
    ['missing', /no gate .*prior gate/],
  ] as const) {
    if (what === 'missing') {
      delete saved.metadata.mixer;
      saveModel(dir, saved);
    }
    const served = loadServedModel(dir);
    assert.ok(served.hasNotes && served.mixture.notes.size === notes.size, `${what}: the notes' n-gram serves`);
    assert.ok(served.learned, `${what}: notes saved in the editor are still learnt`);
    assert.deepEqual(Array.from(served.mixture.mixer.weights), Array.from(mixerPrior()), `${what}: the prior gate`);
    assert.equal(served.warnings.length, 1);
    assert.match(served.warnings[0], problem);
    served.dispose();
  }
});
