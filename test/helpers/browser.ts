// A real headless chromium (Debian's package) driven by playwright-core, for the console's tests.
// Every page records its console errors and uncaught exceptions, so a test can assert there are none.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from './nodes';
import { findTool, missingToolSkip } from './tools';

/** Where screenshots go (gitignored); docs/images holds the copies the docs show. */
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'console');

/** For node:test's `skip`: false when chromium is installed (a failure under CI=true when it is not). */
export function chromiumSkip(): string | false {
  return missingToolSkip('chromium', 'chromium');
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: findTool('chromium')!,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A page in a fresh context (its own cookies) and the errors it reports. */
export async function watchedPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  return { page, errors };
}

/** Saves a full-page screenshot as test-artifacts/console/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Opens the console at `base` and logs in with `password`. */
export async function logIn(page: Page, base: string, password: string): Promise<void> {
  await page.goto(`${base}/console`);
  await page.getByTestId('console-password').fill(password);
  await page.getByTestId('console-login').click();
}
