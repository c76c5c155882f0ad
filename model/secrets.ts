// Lines of a note that look like a secret (a key, a token, a password, a private key): the trainer and learning from
// saves drop them before any model sees them, and no completion that would produce one is offered. One detector
// serves all three, so that what is kept out of training is also what is never suggested.

/**
 * Token shapes that services issue; a line holding one is a secret wherever it stands. Each needs its prefix and a
 * long run of token characters, so that ordinary words never match.
 */
const TOKEN_SHAPES = [
  String.raw`\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}\b`, // AWS key ids
  String.raw`\bgh[pousr]_[A-Za-z0-9]{36,}`, // GitHub tokens
  String.raw`\bgithub_pat_[A-Za-z0-9_]{40,}`,
  String.raw`\bglpat-[A-Za-z0-9_-]{20,}`, // GitLab
  String.raw`\bxox[abposr]-[A-Za-z0-9-]{10,}`, // Slack
  String.raw`hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+`,
  String.raw`\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}`, // Stripe
  String.raw`\bwhsec_[A-Za-z0-9]{20,}`,
  String.raw`\bAIza[0-9A-Za-z_-]{35}`, // Google API keys and OAuth tokens
  String.raw`\bya29\.[0-9A-Za-z_-]{20,}`,
  String.raw`\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}`, // OpenAI, Anthropic
  String.raw`\bhf_[A-Za-z0-9]{30,}`, // Hugging Face
  String.raw`\bnpm_[A-Za-z0-9]{36}\b`,
  String.raw`\bpypi-AgE[A-Za-z0-9_-]{50,}`,
  String.raw`\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}`, // SendGrid
  String.raw`\bdop_v1_[a-f0-9]{64}\b`, // DigitalOcean
  String.raw`\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b`, // Shopify
  String.raw`\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*`, // JWTs
  String.raw`\b[a-z][a-z0-9+.-]*://[^\s/:@]+:[^\s/@]{3,}@`, // a password in a URL
  String.raw`-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----`,
];
const TOKEN_SHAPE = new RegExp(TOKEN_SHAPES.join('|'));

/**
 * A cheap first look: a line can only look like a secret if it holds one of these (the names a secret goes by, the
 * prefixes of the token shapes). Most lines hold none, so the trainer reads a large corpus at the speed of one regular
 * expression.
 */
const CANDIDATE =
  /key|token|secret|pass|pwd|auth|credential|bearer|cookie|a(?:kia|sia|bia|cca|gpa|ida|ipa|npa|nva|pka|roa|sca)|gh[pousr]_|github_pat_|glpat-|xox|hooks\.slack|[sr]k_|whsec_|aiza|ya29\.|sk-|hf_|npm_|pypi-|sg\.|dop_v1_|shp|eyj|:\/\/|-----begin/gi;

/** Names (as parts of an identifier) whose value is a password: a short one counts. */
const PASSWORD_WORDS = new Set(['password', 'passwd', 'pwd', 'passphrase', 'pass', 'pw']);
/** Names whose value is a token or a key. */
const SECRET_WORDS = new Set([
  'secret',
  'secrets',
  'token',
  'apikey',
  'auth',
  'authorization',
  'credential',
  'credentials',
  'cookie',
  'bearer',
]);
/** Words that, before "key", make it an API or cryptographic key rather than a key of a map or a keyboard. */
const KEY_QUALIFIERS = new Set([
  'api',
  'access',
  'secret',
  'private',
  'client',
  'signing',
  'encryption',
  'master',
  'license',
  'account',
  'service',
  'session',
  'auth',
]);

type Strength = 'password' | 'secret' | 'key';

/** How much of a secret a name promises: a password, a token, a bare "key" (which often is not one), or none. */
function nameStrength(name: string): Strength | undefined {
  const parts = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[\s_.$-]+/)
    .filter(Boolean);
  if (parts.some((part) => PASSWORD_WORDS.has(part))) return 'password';
  if (parts.some((part) => SECRET_WORDS.has(part))) return 'secret';
  const key = parts.findIndex((part) => part === 'key' || part === 'keys');
  if (key < 0) return undefined;
  return parts.slice(0, key).some((part) => KEY_QUALIFIERS.has(part)) ? 'secret' : 'key';
}

/** Values that stand for a secret without being one: placeholders, variables, templates, code. */
const PLACEHOLDER =
  /^(?:x+|\*+|\.+|-+|#+|0+|your[\w-]*|changeme|example[\w-]*|dummy|placeholder|redacted|secret|password|none|null|nil|undefined|true|false|string|number|required|optional|todo|tbd|n\/a)$/i;
/** An environment or template variable, or a path through objects (process.env.TOKEN, config.secret). */
const REFERENCE = /^(?:[$%]|\{\{)|^[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+$/;

/** Shannon entropy in bits per character. */
function entropy(value: string): number {
  const counts = new Map<string, number>();
  for (const char of value) counts.set(char, (counts.get(char) ?? 0) + 1);
  let bits = 0;
  for (const count of counts.values()) {
    const p = count / value.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** Whether a value after a name of this strength looks like the secret itself rather than a word or a reference. */
function looksRandom(value: string, strength: Strength): boolean {
  const minLength = strength === 'password' ? 6 : strength === 'secret' ? 8 : 16;
  if (value.length < minLength || PLACEHOLDER.test(value) || REFERENCE.test(value)) return false;
  const letters = /[A-Za-z]/.test(value);
  const digits = /[0-9]/.test(value);
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(value)).length;
  if (strength === 'key') return letters && digits && entropy(value) >= 3;
  // A password mixes letters with digits or symbols; a token is letters and digits, or long and mixed.
  if (letters && digits) return true;
  if (strength === 'password') return letters && classes >= 3;
  return value.length >= 20 && classes >= 3 && entropy(value) >= 3.5;
}

/**
 * A name (an identifier, a header, a flag), how it is tied to what follows (=, :, :=, =>, "is", or a space after a
 * flag), an optional scheme (Bearer, Basic, …), and the value. The name's own characters are bounded so that the
 * search stays linear on a long line.
 */
const ASSIGNMENT =
  /(-{1,2})?([A-Za-z_$][\w$.-]{0,63})["'`*\]]*(\s*(?::=|=>|=|:)\s*|\s+is\s+|\s+)(?:(?:bearer|basic|token|digest)\s+)?["'`]?([^\s"'`,;()[\]{}<>]{1,512})/gi;

/** Whether one line (no newline in it) looks like it holds a secret. */
export function looksLikeSecret(line: string): boolean {
  CANDIDATE.lastIndex = 0;
  if (!CANDIDATE.test(line)) return false;
  if (TOKEN_SHAPE.test(line)) return true;
  ASSIGNMENT.lastIndex = 0;
  for (let match = ASSIGNMENT.exec(line); match; match = ASSIGNMENT.exec(line)) {
    const [, dashes, name, tie, value] = match;
    const strength = nameStrength(name);
    if (strength) {
      // "is" ties a value in prose ("the password is …"); a bare space only after a flag (--token …) or a scheme.
      const tied = /[=:]/.test(tie)
        ? true
        : /\sis\s/i.test(tie)
          ? strength !== 'key'
          : dashes !== undefined || /^(?:bearer|authorization)$/i.test(name);
      if (tied && looksRandom(value, strength)) return true;
    }
    // The next name may start inside this match ("my password is …", "token=abc key=…"): go on just after this name.
    ASSIGNMENT.lastIndex = match.index + (dashes?.length ?? 0) + name.length;
  }
  return false;
}

/**
 * Whether the characters of `line` from `from` on write part of the value of a password or a token (`password: `, `API_KEY=`),
 * other than a placeholder or a reference. A completion may stop short of the whole secret, at a character the model
 * cannot spell or where it is unsure, and what it offers would still be the secret's start, which looksLikeSecret cannot
 * tell from a word.
 */
function writesSecretValue(line: string, from: number): boolean {
  CANDIDATE.lastIndex = 0;
  if (!CANDIDATE.test(line)) return false;
  ASSIGNMENT.lastIndex = 0;
  for (let match = ASSIGNMENT.exec(line); match; match = ASSIGNMENT.exec(line)) {
    const [whole, dashes, name, tie, value] = match;
    const strength = nameStrength(name);
    const valueEnd = match.index + whole.length;
    if (strength && strength !== 'key' && /[=:]/.test(tie) && valueEnd > from)
      if (!PLACEHOLDER.test(value) && !REFERENCE.test(value)) return true;
    ASSIGNMENT.lastIndex = match.index + (dashes?.length ?? 0) + name.length;
  }
  return false;
}

const PRIVATE_KEY_BEGIN = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----/;
const PEM_END = /-----END [A-Z0-9 ]*-----/;
/** What a PEM block's body holds: base64, its header lines (Proc-Type: …), blank lines. */
const PEM_BODY = /^(?:[A-Za-z0-9+/=]*|[A-Za-z-]+: .*)\s*$/;

export interface SecretFreeText {
  text: string;
  /** The lines dropped, numbered from 1 in the text given. */
  droppedLines: number[];
}

/**
 * The text without its lines that look like a secret, and without private-key blocks from their BEGIN line to their
 * END line (or to the first line that is not part of the key's body). A dropped line goes with its newline.
 */
export function withoutSecretLines(text: string): SecretFreeText {
  const droppedLines: number[] = [];
  let out = '';
  let kept = 0;
  let inKey = false;
  // Only the lines around a candidate are looked at; the rest is copied in slices.
  let lineStart = 0;
  let lineNumber = 1;
  let counted = 0;
  const lineNumberAt = (offset: number) => {
    for (let i = text.indexOf('\n', counted); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) lineNumber++;
    counted = offset;
    return lineNumber;
  };
  const drop = (start: number, end: number) => {
    out += text.slice(kept, start);
    kept = Math.min(text.length, end + 1);
    droppedLines.push(lineNumberAt(start));
  };
  CANDIDATE.lastIndex = 0;
  for (;;) {
    let start: number;
    if (inKey) {
      start = lineStart;
    } else {
      const candidate = CANDIDATE.exec(text);
      if (!candidate) break;
      start = text.lastIndexOf('\n', candidate.index) + 1;
    }
    if (start >= text.length) break;
    const newline = text.indexOf('\n', start);
    const end = newline < 0 ? text.length : newline;
    const line = text.slice(start, end);
    if (inKey) {
      if (PEM_END.test(line)) {
        drop(start, end);
        inKey = false;
      } else if (PEM_BODY.test(line)) {
        drop(start, end);
      } else {
        inKey = false;
      }
    } else if (PRIVATE_KEY_BEGIN.test(line) && !PEM_END.test(line)) {
      drop(start, end);
      inKey = true;
    } else if (looksLikeSecret(line)) {
      drop(start, end);
    }
    lineStart = end + 1;
    CANDIDATE.lastIndex = lineStart;
    if (newline < 0) break;
  }
  out += text.slice(kept);
  return { text: droppedLines.length === 0 ? text : out, droppedLines };
}

/** How far back a completion looks for an unfinished private-key block; a 4096-bit RSA key's PEM is under 4 KB. */
const KEY_BLOCK_WINDOW = 16 * 1024;
/** How much of the line before the cursor is judged with the completion; a secret's name is close to its value. */
const LINE_WINDOW = 1024;

/**
 * Whether offering `completion` at `offset` in `text` would produce something that looks like a secret: a line of the
 * text up to the cursor with the completion after it looks like one, or the cursor is inside a private-key block.
 */
export function completionRevealsSecret(text: string, offset: number, completion: string): boolean {
  const lineStart = Math.max(text.lastIndexOf('\n', offset - 1) + 1, offset - LINE_WINDOW);
  const lines = (text.slice(lineStart, offset) + completion).split('\n');
  if (lines.some(looksLikeSecret)) return true;
  if (writesSecretValue(lines[0], offset - lineStart)) return true;
  const before = text.slice(Math.max(0, offset - KEY_BLOCK_WINDOW), offset);
  const begin = before.lastIndexOf('-----BEGIN ');
  if (begin < 0) return false;
  const beginLineEnd = before.indexOf('\n', begin);
  const beginLine = before.slice(begin, beginLineEnd < 0 ? before.length : beginLineEnd);
  return PRIVATE_KEY_BEGIN.test(beginLine) && !PEM_END.test(before.slice(begin));
}
