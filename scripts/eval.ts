// npm run eval -- --model DIR [--json] [--tail F] [--chars N] PATH ...: bits per char, keystroke
// savings through the real server, and request latency, on held-out text.
import { closeSync, openSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BackendUnavailableError, selectSequenceBackend } from '../backends/select';
import { ModelFormatError } from '../model/files';
import { loadModel } from '../model/format';
import { LEARNED_FILE, LearnedNotes } from '../model/learned';
import { loadServedModel } from '../model/served';
import { NOTES_TEXT_FILE, readNotesText } from '../model/notes-text';
import { CharLstm, parametersFromWeights } from '../model/network';
import { scoreLstm, ValidationSet } from '../training/mixture-fit';
import { scoreAsTyped } from '../completion/score';
import { escapeNatsPerCharacter } from '../model/escape';
import { LspSession, percentile, replayTypist } from '../tools/lsp-driver';
import { numberFlag, parse, runMain, UsageError } from './cli';
import { COMPLETION_RANGES, STOP_ATS } from '../completion/options';
import { loadCorpus } from '../training/corpus';

const USAGE = `usage: npm run eval -- --model DIR [--json] [--tail FRACTION] [--chars N] [--beam-width N] [--max-chars N] [--min-confidence X] [--stop-at word|line|none] [--no-bpc] [--no-replay] [--no-online] [--trace FILE] [--costs FILE] PATH ...

PATH              held-out text files or folders
--tail FRACTION   evaluate only the last FRACTION of each file (0.1 = the usual validation split)
--chars N         evaluate only the first N characters (of all the files, in order)
--no-bpc          skip bits per char: keystroke savings and latency only
--no-replay       skip keystroke savings and latency: bits per char only
--no-online       score and replay without the match model and the online stage of the mixture
--trace FILE      write each request of the replay as a JSON line: position, suggestion, accepted
--costs FILE      write each character scored as a line: its cost in bits, a tab, the character as JSON`;

/** A text this long found whole in the model's notes was read in training, not by chance. */
const RECALL_CHECK_CHARS = 200;

async function main(): Promise<void> {
  const { values, positionals } = parse(
    process.argv.slice(2),
    {
      model: { type: 'string' },
      json: { type: 'boolean' },
      tail: { type: 'string' },
      chars: { type: 'string' },
      'beam-width': { type: 'string' },
      'max-chars': { type: 'string' },
      'min-confidence': { type: 'string' },
      'stop-at': { type: 'string' },
      'no-bpc': { type: 'boolean' },
      'no-online': { type: 'boolean' },
      'no-replay': { type: 'boolean' },
      trace: { type: 'string' },
      costs: { type: 'string' },
    },
    USAGE,
  );
  if (typeof values.model !== 'string' || positionals.length === 0) throw new UsageError(USAGE);
  const tail = numberFlag(values.tail as string | undefined, 'tail', 0.001, 1, false, USAGE) ?? 1;
  const charLimit = numberFlag(values.chars as string | undefined, 'chars', 1, 1e9, true, USAGE) ?? Infinity;
  const optionFlag = (flag: string, option: keyof typeof COMPLETION_RANGES) => {
    const [min, max, integer] = COMPLETION_RANGES[option];
    return numberFlag(values[flag] as string | undefined, flag, min, max, integer, USAGE);
  };
  const beamWidth = optionFlag('beam-width', 'beamWidth');
  const maxChars = optionFlag('max-chars', 'maxChars');
  const minConfidence = optionFlag('min-confidence', 'minConfidence');
  const stopAt = values['stop-at'] as string | undefined;
  if (stopAt !== undefined && !(STOP_ATS as readonly string[]).includes(stopAt))
    throw new UsageError(`--stop-at must be one of ${STOP_ATS.join(', ')}\n${USAGE}`);
  // Opened now, where they will be written, so that a path that cannot be written is reported before minutes of
  // scoring, not after.
  const costs =
    typeof values.costs === 'string' && !values['no-bpc'] ? openForWriting(values.costs, 'costs') : undefined;
  const trace =
    typeof values.trace === 'string' && !values['no-replay'] ? openForWriting(values.trace, 'trace') : undefined;
  const modelDir = resolve(values.model);
  const say = (line: string) => (values.json ? process.stderr : process.stdout).write(line + '\n');

  // Checked before anything else, so a bad model is reported at once, with or without --no-bpc.
  const { vocabulary } = loadModel(modelDir);
  const notes = readNotesText(modelDir);
  // What the served model reads of the notes learnt from saves.
  const { learned } = LearnedNotes.loadOrEmpty(modelDir, vocabulary);
  let corpus;
  try {
    corpus = loadCorpus(positionals.map((p) => resolve(String(p))));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const documents = corpus.documents.map((d) => {
    const points = [...d.text];
    return points.slice(Math.floor(points.length * (1 - tail))).join('');
  });
  if (Number.isFinite(charLimit)) {
    let left = charLimit;
    for (let i = 0; i < documents.length; i++) {
      const points = [...documents[i]];
      documents[i] = points.slice(0, left).join('');
      left -= Math.min(left, points.length);
    }
    while (documents.length > 1 && documents[documents.length - 1] === '') documents.pop();
  }
  const long = documents.filter((d) => [...d].length >= RECALL_CHECK_CHARS);
  const recalledFromNotes = long.filter((d) => notes?.includes(d)).length;
  if (recalledFromNotes > 0)
    throw new UsageError(
      `${recalledFromNotes} of the ${documents.length} text(s) to score occur verbatim in the notes this model learnt (${join(modelDir, NOTES_TEXT_FILE)}), so their figures would measure recall, not prediction. Score text the model has not read; to score a model on its own validation text, train it with --validation-unseen.`,
    );
  const recalledFromSaves = long.filter((d) => learned.holds(d)).length;
  if (recalledFromSaves > 0)
    throw new UsageError(
      `${recalledFromSaves} of the ${documents.length} text(s) to score occur verbatim in the notes this model learnt from saves in the editor (${join(modelDir, LEARNED_FILE)}), so their figures would measure recall, not prediction. Score text the model has not read, or run "Char Complete: Forget this file" on it in the editor first.`,
    );
  const text = documents.join('\n\n');
  const totalChars = documents.reduce((sum, d) => sum + [...d].length, 0);
  if (text.length === 0) throw new UsageError(`no text to evaluate in ${positionals.join(', ')}`);

  // Bits per char, in process: the text typed file by file through the completion engine the server runs, and, for
  // reference, each part alone over the whole text at once.
  let nats: number | undefined;
  let parts: { lstm: number; ngram: number | null } | undefined;
  if (!values['no-bpc']) {
    await selectSequenceBackend('auto');
    const served = loadServedModel(modelDir);
    for (const warning of served.warnings) say(`warning: ${warning}`);
    const { config, weights, vocabulary } = served.saved;
    const model = new CharLstm(config, parametersFromWeights(config, weights));
    const ids = vocabulary.encode(text);
    const seq = 64;
    const batch = Math.max(1, Math.min(32, Math.floor((ids.length - 1) / seq)));
    // Scored as the trainer scores its validation text, characters outside the vocabulary charged in full.
    const whole = ValidationSet.of(
      ids,
      batch,
      seq,
      served.mixture.notes,
      escapeNatsPerCharacter(served.saved.escape, text, vocabulary),
    );
    if (whole) {
      const scores = await scoreLstm(model, ids, batch, seq);
      parts = { lstm: whole.lstmNats(scores), ngram: served.hasNotes ? whole.notesNats : null };
    }
    model.dispose();
    const typed = await scoreAsTyped(served, documents, {
      online: !values['no-online'],
      onCharacter:
        costs === undefined
          ? undefined
          : (char, charNats) => writeSync(costs, `${(charNats / Math.LN2).toFixed(4)}\t${JSON.stringify(char)}\n`),
      onProgress: (done) => {
        if (!values.json)
          process.stdout.write(
            `\r  scoring: ${done.toLocaleString('en-US')} / ${totalChars.toLocaleString('en-US')} chars`,
          );
      },
    });
    if (costs !== undefined) closeSync(costs);
    if (!values.json) process.stdout.write('\r\x1b[2K');
    served.dispose();
    nats = typed.nats / typed.chars;
    const figure = (x: number) => `${(x / Math.LN2).toFixed(3)} bits/char (${x.toFixed(4)} nats)`;
    const outside = typed.unknown
      ? `, of which spelling out ${typed.unknown.toLocaleString('en-US')} characters outside the vocabulary ${(typed.escapeNats / typed.chars / Math.LN2).toFixed(3)}`
      : '';
    say(
      `bits per char, as typed${values['no-online'] ? ' without the online stage' : ''}: ${figure(nats)} over ${typed.chars.toLocaleString('en-US')} chars in ${documents.length} file(s)${outside}${parts?.ngram == null ? '' : `; over the whole text at once, LSTM alone ${figure(parts.lstm)}, n-gram alone ${figure(parts.ngram)}`}`,
    );
  }

  // Keystroke savings and latency through the real server.
  const settings: Record<string, unknown> = { modelPath: modelDir, learnWhileTyping: !values['no-online'] };
  if (beamWidth) settings.beamWidth = beamWidth;
  if (maxChars) settings.maxChars = maxChars;
  if (minConfidence !== undefined) settings.minConfidence = minConfidence;
  if (stopAt !== undefined) settings.stopAt = stopAt;
  const replayed = values['no-replay'] ? undefined : await replay(text, settings, !!values.json, trace);
  if (replayed) {
    const { result, ksr, latency, seconds } = replayed;
    say(
      `keystroke savings: ${(ksr * 100).toFixed(1)}% (${result.keystrokes.toLocaleString('en-US')} keystrokes for ${result.chars.toLocaleString('en-US')} chars, ${result.accepted.toLocaleString('en-US')} completions accepted of ${result.shown.toLocaleString('en-US')} shown, ${((100 * result.accepted) / Math.max(1, result.shown)).toFixed(1)}%) in ${seconds} s`,
    );
    say(
      `request latency: p50 ${latency.p50.toFixed(2)} ms, p95 ${latency.p95.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`,
    );
  }
  if (values.json) {
    const round = (x: number) => Math.round(x * 1000) / 1000;
    process.stdout.write(
      JSON.stringify({
        bpc: nats === undefined ? null : round(nats / Math.LN2),
        nats: nats === undefined ? null : round(nats),
        lstm_nats: parts ? round(parts.lstm) : null,
        ngram_nats: parts?.ngram == null ? null : round(parts.ngram),
        online: !values['no-online'],
        ksr: replayed ? round(replayed.ksr) : null,
        latency_ms: replayed
          ? { p50: round(replayed.latency.p50), p95: round(replayed.latency.p95), p99: round(replayed.latency.p99) }
          : null,
        chars: replayed?.result.chars ?? null,
        shown: replayed?.result.shown ?? null,
        accepted: replayed?.result.accepted ?? null,
        precision: replayed ? round(replayed.result.accepted / Math.max(1, replayed.result.shown)) : null,
      }) + '\n',
    );
  }
}

/** Opens `path` for `--flag` to write, or says plainly why it cannot. */
function openForWriting(path: string, flag: string): number {
  try {
    return openSync(path, 'w');
  } catch (error) {
    throw new UsageError(`--${flag} ${path}: cannot write there (${(error as Error).message})`);
  }
}

/** Types `text` into the real server as a typist who accepts only exact suggestions. */
async function replay(text: string, settings: Record<string, unknown>, quiet: boolean, trace?: number) {
  const session = new LspSession({ initializationOptions: settings, configuration: () => settings });
  await session.initialize();
  const uri = 'file:///eval/held-out.md';
  await session.open(uri, '');
  const started = performance.now();
  const result = await replayTypist(session, uri, '', text, {
    onProgress: (done) => {
      if (!quiet)
        process.stdout.write(
          `\r  replaying: ${done.toLocaleString('en-US')} / ${text.length.toLocaleString('en-US')} chars`,
        );
    },
    onSuggestion:
      trace === undefined
        ? undefined
        : (position, suggestion, accepted) => {
            writeSync(trace, JSON.stringify({ position, suggestion: suggestion ?? null, accepted }) + '\n');
          },
  });
  if (trace !== undefined) closeSync(trace);
  if (!quiet) process.stdout.write('\r\x1b[2K');
  await session.shutdown();
  return {
    result,
    ksr: 1 - result.keystrokes / result.chars,
    latency: {
      p50: percentile(result.latenciesMs, 50),
      p95: percentile(result.latenciesMs, 95),
      p99: percentile(result.latenciesMs, 99),
    },
    seconds: Math.round((performance.now() - started) / 1000),
  };
}

runMain(main, [ModelFormatError, BackendUnavailableError]);
