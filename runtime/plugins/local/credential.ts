/**
 * serve's credential on disk: `MICRO_FN_HOME/auth/credential.json`, mode 0600 in a folder of mode 0700. serve makes it
 * on its first start; every micro-fn process of the same user and MICRO_FN_HOME reads it, so the CLI needs no login.
 * Node only. The format is runtime/core/credential.ts.
 */
import { chmodSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CREDENTIAL_FILE, parseCredential, type Credential } from '../../core/credential.js';

/** Where the credential of `home` (MICRO_FN_HOME) lives. */
export function credentialPath(home: string): string {
  return join(home, ...CREDENTIAL_FILE);
}

/** The credential of `home`, or undefined when there is none yet (or it cannot be read by this user). */
export function readCredential(home: string): Credential | undefined {
  const path = credentialPath(home);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR') return undefined;
    throw err;
  }
  return parseCredential(text, path);
}

/**
 * The credential of `home`, made first if there is none: fresh random secrets, written to a temporary file and
 * linked into place, so two processes starting at once agree on one. Fixes the modes of an existing one.
 */
export function ensureCredential(home: string): Credential {
  const path = credentialPath(home);
  const dir = join(path, '..');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const existing = readCredential(home);
  if (existing) {
    chmodSync(path, 0o600);
    return existing;
  }
  const temporary = `${path}.${process.pid}.${random(4).toString('hex')}`;
  writeFileSync(temporary, `${JSON.stringify(newCredential(), null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temporary, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Another process made it first: theirs is the one.
  } finally {
    rmSync(temporary, { force: true });
  }
  return readCredential(home)!;
}

function newCredential(): Credential {
  return {
    control: random(32).toString('base64url'),
    jwtKey: random(32).toString('base64url'),
    aws: keyPair('MFNA'),
    awsInvoke: keyPair('MFNI'),
  };
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** An access key id shaped like AWS's (20 upper-case characters; the prefix tells admin from invoke-only) and a secret. */
function keyPair(prefix: string): Credential['aws'] {
  const id = [...random(16)].map((b) => BASE32[b % 32]).join('');
  return { accessKeyId: `${prefix}${id}`, secretAccessKey: random(30).toString('base64') };
}

/**
 * `n` bytes from the system's CSPRNG, through Web Crypto: this module is also loaded by processes that only read the
 * credential (a function's broker client), and a static node:crypto import would cost each of them its loading.
 */
function random(n: number): Buffer {
  return Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(n)));
}
