// A native binary's platform from its header, and the refusal, with its reason, of one built for another platform.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binaryPlatform, foreignBinaryProblem } from '../backends/native-binary';
import { tempDir } from './support/temp-dirs';

function elf(machine: number): Buffer {
  const header = Buffer.alloc(64);
  header.writeUInt32BE(0x7f454c46, 0);
  header[5] = 1; // little-endian
  header.writeUInt16LE(machine, 18);
  return header;
}

function macho(cpu: number): Buffer {
  const header = Buffer.alloc(32);
  header.writeUInt32LE(0xfeedfacf, 0);
  header.writeUInt32LE(cpu, 4);
  return header;
}

function pe(machine: number): Buffer {
  const header = Buffer.alloc(0x100);
  header.write('MZ', 0, 'latin1');
  header.writeUInt32LE(0x80, 0x3c);
  header.write('PE\0\0', 0x80, 'latin1');
  header.writeUInt16LE(machine, 0x84);
  return header;
}

test('the platform and architecture are read from ELF, Mach-O and PE headers', () => {
  assert.deepEqual(binaryPlatform(elf(62)), { platform: 'linux', arch: 'x64' });
  assert.deepEqual(binaryPlatform(elf(183)), { platform: 'linux', arch: 'arm64' });
  assert.deepEqual(binaryPlatform(macho(0x0100000c)), { platform: 'darwin', arch: 'arm64' });
  const fat = Buffer.alloc(32);
  fat.writeUInt32BE(0xcafebabe, 0);
  assert.deepEqual(binaryPlatform(fat), { platform: 'darwin', arch: 'universal' });
  assert.deepEqual(binaryPlatform(pe(0x8664)), { platform: 'win32', arch: 'x64' });
  assert.equal(binaryPlatform(Buffer.from('not a binary at all, just text')), undefined);
});

test('a binary for another platform is refused with what it was built for; one for this platform is not', () => {
  const dir = tempDir('char-complete-native');
  const windows = join(dir, 'dawn.node');
  writeFileSync(windows, pe(0x8664));
  assert.equal(
    foreignBinaryProblem(windows, 'linux', 'x64'),
    `${windows} is built for win32-x64, not this linux-x64 (an extension package for another platform)`,
  );
  assert.equal(foreignBinaryProblem(windows, 'win32', 'x64'), undefined);
  assert.match(foreignBinaryProblem(windows, 'win32', 'arm64') ?? '', /built for win32-x64, not this win32-arm64/);
  // Node's own executable was built for this very process.
  assert.equal(foreignBinaryProblem(process.execPath), undefined);
  const universal = join(dir, 'universal.node');
  const fat = Buffer.alloc(32);
  fat.writeUInt32BE(0xcafebabe, 0);
  writeFileSync(universal, fat);
  assert.equal(foreignBinaryProblem(universal, 'darwin', 'arm64'), undefined);
  assert.equal(
    foreignBinaryProblem(join(dir, 'missing.node')),
    undefined,
    'a missing file is for the caller to report',
  );
});
