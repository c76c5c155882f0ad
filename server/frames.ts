// Passes on only well-framed LSP messages from stdin. vscode-jsonrpc's reader stops for good at a
// header without a usable Content-Length (it reports the error and then reads the same bad header
// again on every chunk), so one malformed frame would leave the server running but deaf. Here such
// bytes are dropped up to the next "Content-Length:", and everything after is served.
import { Transform, TransformCallback } from 'node:stream';

const HEADER_END = Buffer.from('\r\n\r\n');
const LENGTH_FIELD = Buffer.from('content-length:');
/** A header longer than this is not one. */
const MAX_HEADER_BYTES = 8 * 1024;
/** Beyond this a body is not a message but a mistake; a 20 MB document still fits many times. */
const MAX_BODY_BYTES = 512 * 1024 * 1024;

export class FrameFilter extends Transform {
  /** Bytes of a header not yet complete. */
  private header: Buffer = Buffer.alloc(0);
  /** Body bytes still to pass through before the next header. */
  private remaining = 0;

  constructor(private readonly report: (problem: string) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let data = chunk;
    while (data.length > 0) {
      if (this.remaining > 0) {
        // A body streams through as it arrives: a large document is never copied here.
        const part = data.subarray(0, this.remaining);
        this.push(part);
        this.remaining -= part.length;
        data = data.subarray(part.length);
        continue;
      }
      this.header = this.header.length === 0 ? data : Buffer.concat([this.header, data]);
      data = Buffer.alloc(0);
      const headerEnd = this.header.indexOf(HEADER_END);
      if (headerEnd < 0) {
        if (this.header.length > MAX_HEADER_BYTES) this.skip(`${this.header.length} bytes without a header end`);
        if (this.header.indexOf(HEADER_END) < 0) continue;
      }
      const end = this.header.indexOf(HEADER_END);
      const length = contentLength(this.header.subarray(0, end).toString('latin1'));
      if (length === undefined || length > MAX_BODY_BYTES) {
        this.skip(
          length === undefined ? 'a header without a valid Content-Length' : `a Content-Length of ${length} bytes`,
        );
        data = this.header;
        this.header = Buffer.alloc(0);
        continue;
      }
      // Re-written rather than passed on: the reader downstream is strict about what a header may hold.
      this.push(Buffer.from(`Content-Length: ${length}\r\n\r\n`, 'ascii'));
      data = this.header.subarray(end + HEADER_END.length);
      this.header = Buffer.alloc(0);
      this.remaining = length;
      if (length === 0) continue;
    }
    done();
  }

  /** Drops bytes up to the next header that starts with Content-Length, keeping a possible start of one. */
  private skip(why: string): void {
    const lower = Buffer.from(this.header.toString('latin1').toLowerCase(), 'latin1');
    const next = lower.indexOf(LENGTH_FIELD, 1);
    const keep = next >= 0 ? next : Math.max(1, this.header.length - (LENGTH_FIELD.length - 1));
    this.report(`malformed LSP input: ${why}; skipped ${keep} bytes`);
    this.header = this.header.subarray(keep);
  }
}

function contentLength(header: string): number | undefined {
  let length: number | undefined;
  for (const line of header.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    if (line.slice(0, colon).trim().toLowerCase() !== 'content-length') continue;
    const value = line.slice(colon + 1).trim();
    if (!/^\d{1,12}$/.test(value)) return undefined;
    length = Number(value);
  }
  return length;
}
