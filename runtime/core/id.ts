import type {} from './build-constants.js';

/**
 * A unique id in UUID v4 form, for request, message and node ids. Drawn from Math.random (seeded per process
 * by the runtime) rather than Web Crypto: ids must not collide, they need not be secret, and touching
 * `crypto` costs a one-shot process milliseconds of start-up in Node. Every call makes one (a request's
 * `Micro-Id`): four random words spelled out by table, not formatted digit by digit. A bundle for a platform that
 * hands the function its invocations (build-constants.ts: every byte of it loads at each cold start, and it makes an
 * id or two per invocation) spells them digit by digit instead, in a tenth of the code.
 */
export function newId(): string {
  return globalThis.__MICRO_FN_NO_LISTENER__ ? digitByDigit() : byTable();
}

function digitByDigit(): string {
  // Each 0 and 1 a random hex digit; each 8 one of 8, 9, a, b (the variant); the 4 stays (the version).
  return '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) =>
    (Number(c) ^ ((Math.random() * 16) >> (Number(c) / 4))).toString(16),
  );
}

function byTable(): string {
  const a = word();
  const b = word();
  const c = word();
  const d = word();
  return (
    byte(a >>> 24) +
    byte(a >>> 16) +
    byte(a >>> 8) +
    byte(a) +
    '-' +
    byte(b >>> 24) +
    byte(b >>> 16) +
    '-4' +
    HEX[(b >>> 8) & 15]! +
    byte(b) +
    '-' +
    HEX[8 | (c >>> 30)]! + // the variant: 8, 9, a or b
    HEX[(c >>> 24) & 15]! +
    byte(c >>> 16) +
    '-' +
    byte(c >>> 8) +
    byte(c) +
    byte(d >>> 24) +
    byte(d >>> 16) +
    byte(d >>> 8) +
    byte(d)
  );
}

const HEX = '0123456789abcdef';
/** The two hex digits of every byte. */
const BYTES = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => HEX[i >>> 4]! + HEX[i & 15]!);

function byte(n: number): string {
  return BYTES[n & 255]!;
}

/** 32 random bits. */
function word(): number {
  return (Math.random() * 4294967296) >>> 0;
}
