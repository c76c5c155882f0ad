// The secret detector (model/secrets.ts): what it catches (tokens after key, token, password and secret, private-key
// blocks, the token shapes services issue), what it leaves alone (prose and code that only name a secret), and that
// ordinary notes lose no lines to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { completionRevealsSecret, looksLikeSecret, withoutSecretLines } from '../model/secrets';

const ROOT = path.join(__dirname, '..', '..');

// Every value here is made up; the shapes are the services' own.
const SECRET_LINES = [
  'API_KEY=Zq8canaryX7vLm2Pq',
  'export GITHUB_TOKEN=ghp_' + 'aB3'.repeat(12),
  'aws_access_key_id = AKIAIOSFODNN7EXAMPLE',
  'password: hunter2',
  'my password is correct4horse',
  'DB_PASS=Tr0ub4dor&3',
  '"apiKey": "b3f1c9e2a7d84f60"',
  'curl -H "Authorization: Bearer abc123def456ghi789" https://api.example.com',
  'slack bot xoxb-123456789012-abcdefghijkl',
  'jwt: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
  'db: postgres://admin:s3cr3tpw@db.example.com/app',
  '-----BEGIN RSA PRIVATE KEY-----',
  'mytool --token a1b2c3d4e5f6',
  'SECRET_KEY_BASE=Zk_abcDEFghiJKLmnoPQRstu',
  'client_secret: 9f8e7d6c5b4a',
  'openai sk-proj-abcdefghijklmnopqrstuvwx',
  'stripe sk_live_abcdefghijklmnop1234',
  'google AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
  'AccountKey=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==',
  'hf_abcdefghijklmnopqrstuvwxyz012345',
];

const ORDINARY_LINES = [
  'The password is stored in the keychain.',
  'password: string;',
  'const secret = crypto.randomBytes(32);',
  'apiKey: process.env.OPENAI_API_KEY,',
  'token = tokens[i]',
  'key={item.id}',
  'the key to success is practice',
  'API_KEY=your-api-key-here',
  'Press the key combination Ctrl+Shift+P',
  'tokenizer: gpt2',
  'max_tokens: 4096',
  'A keyboard with 104 keys',
  'Asia and Europe met in 1453.',
  'monkey: banana42',
  'key: value',
  'author: Jane Doe 2020',
  'See https://example.com/path?a=1',
  'passed 12 tests in 3.4 s',
  'Secret of Mana (1993) is a good game',
  'password = getpass()',
  'token: ${{ secrets.GITHUB_TOKEN }}',
  'The bearer of this letter is 42 years old',
];

test('lines that hold a key, a token, a password or a private-key marker look like secrets', () => {
  for (const line of SECRET_LINES) assert.ok(looksLikeSecret(line), `caught: ${line}`);
});

test('prose and code that only name a secret, or hold a placeholder or a reference, do not', () => {
  for (const line of ORDINARY_LINES) assert.ok(!looksLikeSecret(line), `left alone: ${line}`);
});

test('withoutSecretLines drops the secret lines and a private-key block from BEGIN to END, and says which', () => {
  const text = [
    'first note line',
    '-----BEGIN OPENSSH PRIVATE KEY-----',
    'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ',
    'AAAA==',
    '-----END OPENSSH PRIVATE KEY-----',
    'kept line',
    'password: hunter2',
    'last line',
  ].join('\n');
  assert.deepEqual(withoutSecretLines(text), {
    text: 'first note line\nkept line\nlast line',
    droppedLines: [2, 3, 4, 5, 7],
  });
});

test('an encrypted PEM key is dropped with its headers, and a key block with no END stops at the first prose line', () => {
  const encrypted = [
    '-----BEGIN RSA PRIVATE KEY-----',
    'Proc-Type: 4,ENCRYPTED',
    'DEK-Info: AES-128-CBC,0123456789ABCDEF',
    '',
    'MIIEowIBAAKCAQEA7Qx',
    '-----END RSA PRIVATE KEY-----',
    'after',
  ].join('\n');
  assert.equal(withoutSecretLines(encrypted).text, 'after');
  const unterminated = 'note\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\nThen the meeting went on.\n';
  assert.deepEqual(withoutSecretLines(unterminated), {
    text: 'note\nThen the meeting went on.\n',
    droppedLines: [2, 3],
  });
});

test('a text with nothing secret comes back as it was, and a last line without a newline can be dropped', () => {
  const plain = 'a note\nabout keys and tokens\n';
  assert.equal(withoutSecretLines(plain).text, plain);
  assert.deepEqual(withoutSecretLines('kept\nAPI_KEY=Zq8canaryX7vLm2Pq'), { text: 'kept\n', droppedLines: [2] });
});

test('a completion that would finish a secret, or continue a private key, is caught; others are not', () => {
  const text = 'notes\nAPI_KEY=';
  assert.ok(completionRevealsSecret(text, text.length, 'Zq8canaryX7vLm2Pq'));
  assert.ok(!completionRevealsSecret(text, text.length, 'your-api-key-here'));
  // The start of a password or a token is refused too: a completion may stop where the model cannot spell the rest.
  const password = 'db_password: ';
  assert.ok(completionRevealsSecret(password, password.length, 'doc'));
  assert.ok(completionRevealsSecret('API_KEY=Zq', 10, '8c'));
  assert.ok(!completionRevealsSecret(password, password.length, '${DB_PASSWORD}'), 'a reference is not a secret');
  assert.ok(!completionRevealsSecret('db_password: doc', 16, '\nhost: db'), 'nor a line after the value');
  const keyboard = 'key: ';
  assert.ok(!completionRevealsSecret(keyboard, keyboard.length, 'enter'), 'a bare "key" is judged by its value alone');
  const prose = 'The meeting is on ';
  assert.ok(!completionRevealsSecret(prose, prose.length, 'Tuesday'));
  // A completion that starts a new line is judged on that line too.
  assert.ok(completionRevealsSecret(prose, prose.length, 'Tuesday\npassword: hunter2'));
  const key = 'x\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB';
  assert.ok(completionRevealsSecret(key, key.length, 'q2w3e4'));
  const ended = `${key}\n-----END EC PRIVATE KEY-----\nback to `;
  assert.ok(!completionRevealsSecret(ended, ended.length, 'notes'));
});

test('ordinary notes lose no lines: the README, the docs and the sources', () => {
  const files = [path.join(ROOT, 'README.md')];
  for (const dir of ['docs', 'model', 'training', 'completion', 'server', 'client', 'scripts', 'tools', 'backends'])
    for (const name of fs.readdirSync(path.join(ROOT, dir)))
      if (/\.(md|ts)$/.test(name) && name !== 'secrets.ts') files.push(path.join(ROOT, dir, name));
  let lines = 0;
  const dropped: string[] = [];
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const all = text.split('\n');
    lines += all.length;
    for (const n of withoutSecretLines(text).droppedLines) dropped.push(`${path.basename(file)}:${n}: ${all[n - 1]}`);
  }
  assert.ok(lines > 10_000, `read ${lines} lines`);
  // A privacy section may show an example; beyond a handful of lines the detector is too eager.
  assert.ok(dropped.length <= 3, `dropped ${dropped.length} of ${lines} lines:\n${dropped.join('\n')}`);
});

test('a long line is judged in linear time', () => {
  const long = 'password token key secret '.repeat(40_000) + 'x'.repeat(200_000);
  const started = performance.now();
  withoutSecretLines(`${long}\n${' '.repeat(500_000)}key\n`);
  looksLikeSecret(long);
  assert.ok(performance.now() - started < 5000, 'a few megabytes in well under the time limit');
});
