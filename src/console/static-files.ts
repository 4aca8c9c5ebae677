import { readFileSync, readdirSync } from 'node:fs';
import { extname, join } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

/** A file of the console's front end, read once. */
export interface Asset {
  type: string;
  body: Buffer;
}

/**
 * The console's built front end (dist/src/console/web: the compiled modules, the HTML and the
 * CSS), read into memory at start: a few kilobytes, and no path from a URL ever reaches the disk.
 */
export function loadAssets(dir = join(__dirname, 'web')): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type !== undefined) assets.set(name, { type, body: readFileSync(join(dir, name)) });
  }
  for (const page of ['login.html', 'console.html']) {
    if (!assets.has(page)) throw new Error(`console: ${join(dir, page)} is missing; run npm run build`);
  }
  return assets;
}
