// Locating external tools (Debian packages) that some tests need.
// Rule: under CI (CI=true) a missing tool is a failure, never a skip; elsewhere a test
// skips with a message that says how to install it.
import * as fs from 'node:fs';
import * as path from 'node:path';

const EXTRA_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin'];

function isExecutableFile(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of an executable named `name` on PATH or in /usr/bin, /usr/sbin, /usr/local/bin; null if none. */
export function findTool(name: string): string | null {
  if (name.includes('/')) return isExecutableFile(name) ? path.resolve(name) : null;
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const d of [...dirs, ...EXTRA_DIRS]) {
    const p = path.join(d, name);
    if (isExecutableFile(p)) return p;
  }
  return null;
}

/** True when running under CI (CI=true), where a missing service must fail the run. */
export function isCI(): boolean {
  return process.env.CI === 'true';
}

/**
 * For node:test's `skip` option: false when `name` is installed; otherwise a skip message
 * saying how to install it. Under CI=true a missing tool throws instead (a failure, not a skip).
 */
export function missingToolSkip(name: string, debianPackage: string): string | false {
  if (findTool(name)) return false;
  const msg =
    `${name} not found: install the Debian package ${debianPackage} ` +
    `(apt-get install ${debianPackage}), or run npm test as root`;
  if (isCI()) throw new Error(`${msg} [CI=true: a missing service is a failure, not a skip]`);
  return msg;
}

/** Like findTool, but throws with the install hint when the tool is missing. */
export function requireTool(name: string, debianPackage: string): string {
  const p = findTool(name);
  if (p) return p;
  throw new Error(
    `${name} not found: install the Debian package ${debianPackage} ` +
      `(apt-get install ${debianPackage}), or run npm test as root`,
  );
}
