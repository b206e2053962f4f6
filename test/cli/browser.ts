/**
 * Headless Chromium for the browser tests (Debian's `chromium`, driven by playwright-core): whether it is there,
 * and launching it. Without it a suite is skipped, except under CI=true.
 */
import { spawnSync } from 'node:child_process';
import type { Browser } from 'playwright-core';
import { withTimeout } from '../helpers.js';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** True when CHROMIUM runs; `what` names the tests skipped without it. Throws under CI=true when it is missing. */
export function chromiumAvailable(what: string): boolean {
  const ok = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8', timeout: 30_000 }).status === 0;
  if (!ok && process.env.CI === 'true')
    throw new Error(`${CHROMIUM} is not installed, and CI=true: .ci/run installs it (apt-get install chromium)`);
  if (!ok) console.log(`  (skipping ${what}: ${CHROMIUM} is not installed; apt-get install chromium)`);
  return ok;
}

/** Launches CHROMIUM headless (playwright-core loaded here, only by the suites that use it); close() it. */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return withTimeout(chromium.launch({ executablePath: CHROMIUM }), 30000, 'chromium.launch');
}
