// Positions from the client inside a character: a completion never splits a surrogate pair, so what it inserts leaves valid UTF-16.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LspSession } from '../tools/lsp-driver';
import { randomModel } from './support/random-model';

const root = mkdtempSync(join(tmpdir(), 'char-complete-positions-'));
const modelDir = join(root, 'model');
randomModel(3, { embed: 8, hidden: 32, layers: 1 }, modelDir);
const sessions: LspSession[] = [];
after(() => {
  for (const s of sessions) if (s.process.exitCode === null) s.process.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

interface Range {
  start: { line: number; character: number };
  end: { line: number; character: number };
}
interface Edit {
  range: Range;
  newText: string;
}

/** Whether text holds a surrogate without its partner: with the u flag a whole pair is one code point, so \p{Cs} matches only a lone half. */
const wellFormed = (text: string) => !/\p{Cs}/u.test(text);

/** The line's text with an edit on it applied; the edits here never leave their line. */
function applied(line: string, edit: Edit): string {
  return line.slice(0, edit.range.start.character) + edit.newText + line.slice(edit.range.end.character);
}

const betweenHalves = (line: string, character: number) =>
  character > 0 &&
  character < line.length &&
  /[\uD800-\uDBFF]/.test(line[character - 1]) &&
  /[\uDC00-\uDFFF]/.test(line[character]);

/** Every edit the server offers at (line, character), inline and in the list. */
async function editsAt(s: LspSession, uri: string, line: number, character: number): Promise<Edit[]> {
  const position = { line, character };
  const inline = (await s.connection.sendRequest('textDocument/inlineCompletion', {
    textDocument: { uri },
    position,
    context: { triggerKind: 2 },
  })) as Array<{ insertText: string; range: Range }> | null;
  const list = (await s.connection.sendRequest('textDocument/completion', { textDocument: { uri }, position })) as
    Array<{ textEdit: Edit }> | { items: Array<{ textEdit: Edit }> } | null;
  const items = Array.isArray(list) ? list : (list?.items ?? []);
  return [
    ...(inline ?? []).map((item) => ({ range: item.range, newText: item.insertText })),
    ...items.map((item) => item.textEdit),
  ];
}

test('a position between the halves of a surrogate pair snaps to the character’s start, inline and in the list', async () => {
  const s = new LspSession({
    // The document's own words complete at any confidence, so the server has something to offer everywhere.
    initializationOptions: { modelPath: modelDir, minConfidence: 0 },
    env: { ...process.env, CHAR_COMPLETE_WASM_THREADS: '1' },
  });
  sessions.push(s);
  await s.initialize();
  const lines = [
    'Ich liebe 😀 Emoji und liebe Emoji',
    // A family: three astral characters joined by zero-width joiners.
    'Familie 👨‍👩‍👧 Familie 👨‍👩‍👧 Fa',
  ];
  const uri = 'file:///notes/emoji.md';
  await s.open(uri, lines.join('\n'));

  let offered = 0;
  for (const [lineNumber, line] of lines.entries()) {
    for (let character = 0; character <= line.length; character++) {
      for (const edit of await editsAt(s, uri, lineNumber, character)) {
        offered++;
        const where = `line ${lineNumber}, character ${character}`;
        assert.equal(edit.range.start.line, lineNumber, where);
        assert.equal(edit.range.end.line, lineNumber, where);
        for (const end of [edit.range.start.character, edit.range.end.character])
          assert.ok(!betweenHalves(line, end), `${where}: an edit boundary at ${end} splits a character`);
        assert.ok(
          wellFormed(edit.newText),
          `${where}: the new text ${JSON.stringify(edit.newText)} is not valid UTF-16`,
        );
        assert.ok(wellFormed(applied(line, edit)), `${where}: applying ${JSON.stringify(edit)} leaves invalid UTF-16`);
        // The position inside the emoji is served as the position before it.
        if (betweenHalves(line, character)) assert.equal(edit.range.end.character, character - 1, where);
      }
    }
  }
  assert.ok(offered > 0, 'the server offered completions to check');
  assert.equal(await s.shutdown(), 0);
});
