import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createConsoleLogger } from '../../../runtime/core/context.js';

// ---
const logger = suite('createConsoleLogger');

logger('writes each level with the platform console method: debug and info log, warn warns, error errors', () => {
  const seen: [string, string][] = [];
  const saved = { log: console.log, warn: console.warn, error: console.error };
  console.log = (line: string) => void seen.push(['log', line]);
  console.warn = (line: string) => void seen.push(['warn', line]);
  console.error = (line: string) => void seen.push(['error', line]);
  try {
    const log = createConsoleLogger('svc', 'debug');
    log.debug('d');
    log.info('i', { n: 1 });
    log.warn('w');
    log.error('e');
  } finally {
    Object.assign(console, saved);
  }
  assert.equal(seen, [
    ['log', '[svc] debug d'],
    ['log', '[svc] info i {"n":1}'],
    ['warn', '[svc] warn w'],
    ['error', '[svc] error e'],
  ]);
});

logger.run();
