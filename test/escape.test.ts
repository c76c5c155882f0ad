// Characters outside the vocabulary: the vocabulary leaves them to UNKNOWN, the escape model spells
// them out as a proper distribution, validation charges them in full, and model.json keeps it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AdaptiveEscape, EscapeModel, escapeNats, escapeNatsPerCharacter } from '../model/escape';
import { ModelFormatError } from '../model/files';
import { loadModel, modelFilePath, saveModel } from '../model/format';
import { NgramModel } from '../model/ngram';
import { UNKNOWN, Vocabulary } from '../model/vocab';
import { prepareDataset } from '../training/dataset';
import { fitMixture, ValidationSet } from '../training/mixture-fit';
import type { TrainOptions } from '../training/train-types';
import { randomModel } from './support/random-model';

const tempRoots: string[] = [];
after(() => {
  for (const root of tempRoots) fs.rmSync(root, { recursive: true, force: true });
});

function tempModelDir(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'char-escape-'));
  tempRoots.push(root);
  return path.join(root, 'model');
}

// Chinese with singletons (才, 走, 🐉), an astral character, and a literal U+FFFD.
const TRAIN = '我们今天学习神经网络。我们明天学习语言模型。神经网络很有趣！才走🐉' + UNKNOWN + 'ab ab';

/** The probability mass of every code point that maps to UNKNOWN, surrogates included, as −ln P gives it. */
function massOverUnknown(nats: (codePoint: number) => number, vocabulary: Vocabulary): number {
  const inVocabulary = new Set(vocabulary.chars.filter((c) => c !== UNKNOWN).map((c) => c.codePointAt(0)));
  let mass = 0;
  for (let codePoint = 0; codePoint < 0x110000; codePoint++)
    if (!inVocabulary.has(codePoint)) mass += Math.exp(-nats(codePoint));
  return mass;
}

test('the escape model is a distribution over the code points that map to UNKNOWN: it sums to one', () => {
  const vocabulary = Vocabulary.fromText(TRAIN, 8192, 2);
  const learnt = EscapeModel.fromText(TRAIN, vocabulary);
  const byVocabulary = EscapeModel.fromVocabulary(vocabulary);
  for (const model of [learnt, byVocabulary]) {
    const mass = massOverUnknown((c) => model.nats(c), vocabulary);
    assert.ok(Math.abs(mass - 1) < 1e-9, `sums to ${mass}`);
  }
  // The check can fail: a model a hundredth of a nat too generous, or one that leaves mass out.
  assert.ok(massOverUnknown((c) => learnt.nats(c) - 0.01, vocabulary) > 1 + 1e-3);
  assert.ok(massOverUnknown((c) => learnt.nats(c) + 0.01, vocabulary) < 1 - 1e-3);

  // A page the vocabulary fills gets no share; the rest still sums to one.
  const latin1 = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('');
  const full = Vocabulary.fromText(latin1, 300);
  const fullPage = EscapeModel.fromText(latin1 + '中中文', full);
  assert.ok(Math.abs(massOverUnknown((c) => fullPage.nats(c), full) - 1) < 1e-9);
});

test('the escape model charges what it has seen less than what it has not, and never a character the vocabulary holds', () => {
  const vocabulary = Vocabulary.fromText(TRAIN, 8192, 2);
  const model = EscapeModel.fromText(TRAIN, vocabulary);
  const nats = (c: string) => model.nats(c.codePointAt(0) as number);
  assert.equal(nats('我'), Infinity, 'in the vocabulary: never reached through UNKNOWN');
  assert.ok(Number.isFinite(nats(UNKNOWN)), 'a literal U+FFFD is a character like any other outside the vocabulary');
  assert.ok(nats('才') < nats('上'), 'a singleton of the training text is likelier than a novel character');
  assert.ok(
    nats('上') < nats('Ж'),
    'a novel character of a page the notes use is likelier than one of a page they do not',
  );
  assert.ok(Number.isFinite(nats('\ud800')), 'a lone surrogate, which a JavaScript string may hold, has a cost');
  assert.deepEqual(escapeNats(model, '我才上', vocabulary), { total: nats('才') + nats('上'), count: 2 });
  assert.deepEqual([...escapeNatsPerCharacter(model, '我🐉上', vocabulary)], [0, nats('🐉'), nats('上')]);
});

test('the escape model learns as it reads: a character outside the vocabulary that came before costs less, the more after the same character, and it still sums to one', () => {
  const vocabulary = Vocabulary.fromText(TRAIN, 8192, 2);
  const trained = EscapeModel.fromText(TRAIN, vocabulary);
  const adaptive = new AdaptiveEscape(trained);
  const code = (c: string) => c.codePointAt(0) as number;
  assert.equal(
    adaptive.nats(code('栈'), code('a')),
    trained.nats(code('栈')),
    'having read nothing, it is the trained model',
  );
  const before = adaptive.nats(code('栈'), code('堆'));
  adaptive.learnText('堆栈和缓冲，堆栈');
  assert.equal(adaptive.nats(code('我'), code('堆')), Infinity, 'a character the vocabulary holds is never reached');
  const afterAny = adaptive.nats(code('栈'), code('和'));
  const afterSame = adaptive.nats(code('栈'), code('堆'));
  assert.ok(afterAny < before - 1, `a character read twice costs less (${afterAny} against ${before})`);
  assert.ok(afterSame < afterAny, 'and less again after the character it followed both times');
  assert.ok(adaptive.nats(code('上'), code('堆')) > trained.nats(code('上')), 'what it has not read gives up share');
  for (const previous of [code('堆'), code('和'), undefined]) {
    const mass = massOverUnknown((c) => adaptive.nats(c, previous), vocabulary);
    assert.ok(Math.abs(mass - 1) < 1e-9, `after ${previous}: sums to ${mass}`);
  }
});

test('the escape model expects a character outside the vocabulary in the block of the one before, as far as that has paid, and still sums to one', () => {
  const vocabulary = Vocabulary.fromText(TRAIN, 8192, 2);
  const trained = EscapeModel.fromText(TRAIN, vocabulary);
  const code = (c: string) => c.codePointAt(0) as number;
  const cyrillic = new AdaptiveEscape(trained);
  // Ж is never read; Я's block (U+0400–U+043F) is Ж's, and 中's is not.
  const beforeReading = cyrillic.nats(code('Ж'), code('Я'));
  assert.ok(
    beforeReading < trained.nats(code('Ж')) - 3,
    'after a script character, its block is likely from the start',
  );
  assert.ok(
    cyrillic.nats(code('Ж'), code('a')) >= trained.nats(code('Ж')),
    'after ASCII, nothing is expected of a block',
  );
  cyrillic.learnText('Сковорода Никита Андреевич');
  assert.ok(cyrillic.blockTrust > 0.9, `a Cyrillic name pays the block's way (${cyrillic.blockTrust})`);
  const afterReading = cyrillic.nats(code('Ж'), code('Я'));
  assert.ok(afterReading < trained.nats(code('Ж')) - 5, `it still is once it has (${afterReading})`);
  assert.ok(
    cyrillic.nats(code('上'), code('Я')) > trained.nats(code('上')),
    'and a block that never came gives up share',
  );

  // Characters outside the vocabulary, none in the block of the one before.
  const scattered = new AdaptiveEscape(trained);
  scattered.learnText('堆栈和缓冲区溢出与垃圾回收器标记清除压缩整理分代');
  assert.ok(
    scattered.blockTrust < 0.1,
    `where it never pays, the block level is trusted little (${scattered.blockTrust})`,
  );

  for (const adaptive of [cyrillic, scattered])
    for (const previous of [code('Я'), code('堆'), code(' '), undefined]) {
      const mass = massOverUnknown((c) => adaptive.nats(c, previous), vocabulary);
      assert.ok(Math.abs(mass - 1) < 1e-9, `after ${previous}: sums to ${mass}`);
    }
});

test('the escape model names the likeliest character it has read outside the vocabulary, after the character before', () => {
  const vocabulary = Vocabulary.fromText(TRAIN, 8192, 2);
  const adaptive = new AdaptiveEscape(EscapeModel.fromText(TRAIN, vocabulary));
  const code = (c: string) => c.codePointAt(0) as number;
  assert.equal(adaptive.likeliest(code('堆')), undefined, 'having read nothing, it names nothing');
  adaptive.learnText('缓冲缓冲缓冲 堆栈 堆栈 缓冲');
  const after = (c: string | undefined) => adaptive.likeliest(c === undefined ? undefined : code(c));
  assert.equal(after('堆')?.codePoint, code('栈'), 'what followed this character both times');
  assert.equal(after('缓')?.codePoint, code('冲'));
  assert.equal(after(undefined)?.codePoint, code('缓'), 'with nothing before, the commonest');
  assert.equal(after('堆')?.nats, adaptive.nats(code('栈'), code('堆')), 'at the cost it charges');
});

test('the vocabulary is built from the training text alone, its singletons left to UNKNOWN, and validation charges them', () => {
  const body = '我们今天学习神经网络。我们明天学习语言模型。神经网络很有趣！'.repeat(40);
  // 才 once in the training text, 龙 only in the validation text (the last tenth).
  const text = body.slice(0, 600) + '才' + body.slice(600) + body.slice(0, 60) + '龙龙龙' + body.slice(0, 60);
  const corpus = { documents: [{ path: 'notes.md', text }], skipped: [], excluded: [], droppedLines: [], chars: 0 };
  corpus.chars = [...text].length;
  const options = { seq: 8, batch: 4 } as TrainOptions;
  const dataset = prepareDataset(corpus, undefined, options, { info: () => {}, progress: () => {} });
  const { vocabulary, escape, periodic } = dataset;
  assert.ok(
    dataset.validationText.includes('龙') && !text.slice(0, text.length - dataset.validationText.length).includes('龙'),
  );
  assert.equal(vocabulary.id('龙'), 0, 'a character only the validation text has is not in the vocabulary');
  assert.equal(vocabulary.id('才'), 0, 'a character the training text has once is not in the vocabulary');
  assert.notEqual(vocabulary.id('们'), 0);
  assert.ok(periodic, 'the validation text is long enough to score');
  const { total, count } = escapeNats(escape, dataset.validationText, vocabulary);
  assert.equal(count, 3);
  assert.ok(total > 3 * 5, 'a novel character costs nats beyond UNKNOWN');
  // The three 龙 lie within the scored positions, so their whole cost is charged.
  const covered = periodic.samples.count;
  assert.ok(Math.abs(periodic.escapeNats * covered - total) < 1e-6, 'the escape nats are charged');
  assert.ok(periodic.notesNats > periodic.samples.notesNats + total / covered - 1e-9);
});

test('every validation figure with a novel character is larger by its escape nats than without them', () => {
  const vocabulary = Vocabulary.fromText('abcd abcd abcd', 100, 2);
  const text = 'abcd abcd ab' + 'Ω' + 'd abcd abcd abcd abcd abcd abcd abcd';
  const ids = vocabulary.encode(text);
  const escape = EscapeModel.fromText('abcd abcd abcd', vocabulary);
  const notes = new NgramModel(vocabulary.size);
  notes.add(vocabulary.encode('abcd abcd abcd'));
  const charged = ValidationSet.of(ids, 2, 8, notes, escapeNatsPerCharacter(escape, text, vocabulary))!;
  const uncharged = ValidationSet.of(ids, 2, 8, notes)!;
  const omega = escape.nats('Ω'.codePointAt(0) as number) / charged.samples.count;
  assert.ok(omega > 0.1);
  assert.equal(uncharged.escapeNats, 0);
  assert.ok(Math.abs(charged.notesNats - uncharged.notesNats - omega) < 1e-9, 'the n-gram figure');
  const scores = {
    covered: charged.samples.count,
    target: new Float32Array(charged.samples.count + 1).fill(Math.log(1 / vocabulary.size)),
    max: new Float32Array(charged.samples.count + 1).fill(Math.log(1 / vocabulary.size)),
  };
  assert.ok(Math.abs(charged.lstmNats(scores) - uncharged.lstmNats(scores) - omega) < 1e-6, 'the LSTM figure');
  const gate = fitMixture(uncharged.samples).mixer;
  assert.ok(Math.abs(charged.mixtureNats(gate) - uncharged.mixtureNats(gate) - omega) < 1e-9, "a gate's figure");
  const fitted = [charged.fitGate(scores).nats, uncharged.fitGate(scores).nats];
  assert.ok(Math.abs(fitted[0] - fitted[1] - omega) < 1e-6, "the fitted gate's figure");
  assert.throws(() => ValidationSet.of(ids, 2, 8, notes, new Float64Array(3)), /escape costs/);
});

test('the escape model is saved with the model, and a model.json from before it loads with one made from its vocabulary', () => {
  const dir = tempModelDir();
  const saved = randomModel(1);
  const escape = EscapeModel.fromText('hello héllo ħello 𝄞', saved.vocabulary);
  saveModel(dir, { ...saved, escape });
  assert.deepEqual(loadModel(dir).escape.toJSON(), escape.toJSON());

  const json = JSON.parse(fs.readFileSync(modelFilePath(dir), 'utf8'));
  delete json.escape;
  fs.writeFileSync(modelFilePath(dir), JSON.stringify(json));
  const old = loadModel(dir);
  assert.deepEqual(old.escape.toJSON(), EscapeModel.fromVocabulary(saved.vocabulary).toJSON());
  assert.ok(Number.isFinite(old.escape.nats('é'.codePointAt(0) as number)));

  const broken = (escapeJson: unknown, message: RegExp) => {
    fs.writeFileSync(modelFilePath(dir), JSON.stringify({ ...json, escape: escapeJson }));
    assert.throws(
      () => loadModel(dir),
      (error: Error) => error instanceof ModelFormatError && message.test(error.message),
    );
  };
  broken([], /bad escape model \(escape model: expected an object/);
  broken({ unknown: [[0x110000, 1]], pages: [] }, /"unknown" entry 0 must be/);
  broken({ unknown: [[0x61, 1]], pages: [] }, /U\+61, which the vocabulary holds/);
  broken({ unknown: [], pages: [[1, 0]] }, /"pages" entry 0 must be/);
  broken(
    {
      unknown: [],
      pages: [
        [1, 2],
        [1, 3],
      ],
    },
    /"pages" entry 1 repeats 1/,
  );
  broken({ unknown: [], pages: 'none' }, /"pages" must be an array/);
  assert.throws(
    () => saveModel(dir, { ...saved, escape: EscapeModel.fromVocabulary(Vocabulary.fromText('xyz', 10)) }),
    /another vocabulary/,
  );
});
