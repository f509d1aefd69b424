/**
 * Tamp's version: what `tamp --version` prints and what a .tamp file's
 * producer records. A constant rather than a package.json read so browser
 * code can use it; version.test.ts holds it equal to every package's
 * package.json version.
 */
export const TAMP_VERSION = '0.1.0';
