// Choosing the budget and the model's size for it, with speeds given rather than measured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NetworkConfig } from '../model/architecture';
import { chooseModelSize, countParameters } from '../training/model-size';
import { TRAIN_DEFAULTS } from '../training/defaults';
import { planTraining } from '../training/budget';
import type { TrainOptions } from '../training/train-types';

const base: NetworkConfig = { vocabSize: 100, embed: 64, hidden: TRAIN_DEFAULTS.hidden, layers: 2 };
const seconds = 600;

/** A measure under which each hidden size sees `factor(hidden)` times the wanted chars per parameter; records what it measured. */
function speeds(factor: (hidden: number) => number) {
  const measured: number[] = [];
  const measure = async (config: NetworkConfig) => {
    measured.push(config.hidden);
    const chars = factor(config.hidden) * TRAIN_DEFAULTS.charsPerParameter * countParameters(config);
    return chars / (seconds * TRAIN_DEFAULTS.trainingShare);
  };
  return { measure, measured };
}

test('a budget that feeds bigger models grows the model to the largest one it feeds, measuring no further', async () => {
  const { measure, measured } = speeds((hidden) => (hidden <= 384 ? 2 : 0.8));
  const choice = await chooseModelSize(base, seconds, measure);
  assert.equal(choice.config.hidden, 384);
  assert.equal(choice.config.layers, 2);
  assert.deepEqual(measured, [256, 384, 512]);
  const escaped = (figure: string) => figure.replace('.', '\\.');
  const perParameter = (factor: number) => escaped((factor * TRAIN_DEFAULTS.charsPerParameter).toFixed(1));
  assert.match(
    choice.reason,
    new RegExp(
      `^Size: 2×384 fits the budget \\(10 minutes at a measured [\\d,]+ chars/s gives about [\\d.]+M training chars, ${perParameter(2)} per parameter; the largest size with at least ${escaped(String(TRAIN_DEFAULTS.charsPerParameter))} is chosen`,
    ),
  );
  assert.match(choice.reason, new RegExp(`2×512 would get .* \\(${perParameter(0.8)} per parameter\\)`));
});

test('a budget too short for the default size shrinks it until one is fed, or to the smallest', async () => {
  const shrink = speeds((hidden) => (hidden <= 128 ? 2 : 0.5));
  assert.equal((await chooseModelSize(base, seconds, shrink.measure)).config.hidden, 128);
  assert.deepEqual(shrink.measured, [256, 192, 128]);

  const none = speeds(() => 0.1);
  const smallest = await chooseModelSize(base, seconds, none.measure);
  assert.equal(smallest.config.hidden, TRAIN_DEFAULTS.hiddenSizes[0]);
  assert.match(smallest.reason, /0\.\d per parameter/);
});

test('the largest size is kept when every size is fed', async () => {
  const all = speeds(() => 3);
  assert.equal((await chooseModelSize({ ...base, layers: 3 }, seconds, all.measure)).config.hidden, 512);
  assert.deepEqual(all.measured, [256, 384, 512]);
});

test('planning a time budget times each shape once, the default size serving both the budget and the size search', async () => {
  const { measure, measured } = speeds((hidden) => (hidden <= 384 ? 1.5 : 0.5));
  const lines: string[] = [];
  const reporter = { info: (line: string) => lines.push(line), progress: () => {} };
  const options = { batch: 64, seq: 64, dropout: 0.1, minutes: 10 } as TrainOptions & { batch: number };
  const run = { usingDefault: false, trainChars: 1e6, config: base, sizeGiven: false, measure };
  const plan = await planTraining(options, run, reporter);
  assert.equal(plan.config.hidden, 384);
  assert.deepEqual(measured, [256, 384, 512]);
  assert.match(lines[0], /^Budget: 10 minutes \(as asked, with early stopping\)/);
  assert.match(lines[1], /^Size: 2×384 fits the budget/);
  // The passes over the text planned: what the chosen size reads at its speed in the budget's training share.
  const chosenChars = 1.5 * TRAIN_DEFAULTS.charsPerParameter * countParameters(plan.config);
  assert.ok(Math.abs(plan.epochs - chosenChars / 1e6) < 1e-9, `epochs ${plan.epochs}`);

  // Without --minutes the default size's speed sets the budget; the size search reuses it.
  const again = speeds(() => 1);
  const derived = await planTraining({ ...options, minutes: undefined }, { ...run, measure: again.measure }, reporter);
  assert.equal(again.measured.filter((hidden) => hidden === TRAIN_DEFAULTS.hidden).length, 1);
  assert.match(lines[2], /^Budget: [\d.]+ minutes? \(about 10 epochs of your notes at [\d,]+ chars\/s/);
  assert.equal(derived.budget.earlyStopping, true);

  // A size given (or resumed) is kept, and nothing is timed for a budget in chars.
  const none = speeds(() => 1);
  const given = await planTraining(
    { ...options, minutes: undefined, chars: 100_000 },
    { ...run, sizeGiven: true, measure: none.measure },
    reporter,
  );
  assert.equal(given.config, base);
  assert.deepEqual(none.measured, []);
  assert.equal(given.budget.steps, Math.ceil(100_000 / (64 * 64)));
  assert.equal(given.epochs, (given.budget.steps! * 64 * 64) / 1e6);
  assert.equal(given.budget.earlyStopping, false, 'a budget given runs to its end');
  const told = await planTraining({ ...options, minutes: undefined, chars: 100_000, earlyStop: true }, run, reporter);
  assert.equal(told.budget.earlyStopping, true, '--early-stop');
  assert.equal(plan.budget.earlyStopping, true, 'a time budget given stops early too');
});
