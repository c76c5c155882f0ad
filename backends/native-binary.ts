// Which platform a native Node addon was built for, read from its header (ELF, Mach-O, PE), so that a binary for
// another platform (a .vsix packaged elsewhere) is refused with a reason instead of failing to load with dlopen's.
import { closeSync, openSync, readSync } from 'node:fs';

export interface BinaryPlatform {
  platform: 'linux' | 'darwin' | 'win32';
  /** Node's arch names; "universal" for a Mach-O fat binary, which holds several. */
  arch: string;
}

const ELF_MACHINES: Record<number, string> = { 3: 'ia32', 40: 'arm', 62: 'x64', 183: 'arm64' };
const MACHO_CPUS: Record<number, string> = { 0x01000007: 'x64', 0x0100000c: 'arm64' };
const PE_MACHINES: Record<number, string> = { 0x14c: 'ia32', 0x8664: 'x64', 0xaa64: 'arm64' };

/** The platform in a binary's header, or undefined when it is none of the three formats (or unreadable). */
export function binaryPlatform(header: Buffer): BinaryPlatform | undefined {
  if (header.length < 20) return undefined;
  if (header.readUInt32BE(0) === 0x7f454c46) {
    const machine = header[5] === 2 ? header.readUInt16BE(18) : header.readUInt16LE(18);
    return { platform: 'linux', arch: ELF_MACHINES[machine] ?? `machine ${machine}` };
  }
  if (header.readUInt32BE(0) === 0xcafebabe) return { platform: 'darwin', arch: 'universal' };
  if (header.readUInt32LE(0) === 0xfeedfacf) {
    const cpu = header.readUInt32LE(4);
    return { platform: 'darwin', arch: MACHO_CPUS[cpu] ?? `cpu ${cpu}` };
  }
  if (header.toString('latin1', 0, 2) === 'MZ' && header.length >= 0x40) {
    const pe = header.readUInt32LE(0x3c);
    if (pe + 6 <= header.length && header.toString('latin1', pe, pe + 4) === 'PE\0\0') {
      const machine = header.readUInt16LE(pe + 4);
      return { platform: 'win32', arch: PE_MACHINES[machine] ?? `machine ${machine}` };
    }
  }
  return undefined;
}

/**
 * Why a native binary cannot load in this process (built for another platform or architecture), or undefined when it
 * can as far as its header tells.
 */
export function foreignBinaryProblem(
  path: string,
  platform: string = process.platform,
  arch: string = process.arch,
): string | undefined {
  let built: BinaryPlatform | undefined;
  try {
    const header = Buffer.alloc(4096);
    const fd = openSync(path, 'r');
    try {
      built = binaryPlatform(header.subarray(0, readSync(fd, header, 0, header.length, 0)));
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (!built) return undefined;
  if (built.platform === platform && (built.arch === arch || built.arch === 'universal')) return undefined;
  return `${path} is built for ${built.platform}-${built.arch}, not this ${platform}-${arch} (an extension package for another platform)`;
}
