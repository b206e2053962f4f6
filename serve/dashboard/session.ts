/**
 * Who may see the dashboard: a browser cannot send serve's control token as a header, so `micro-fn dashboard` asks
 * serve (`Dashboard.Login`, behind the control token) for a one-time login token, which the page's `/login` trades for
 * an HttpOnly, SameSite=Strict session cookie. Both are HMACs under a key derived from the credential's control token:
 * nothing new is stored, and a cookie made under another credential (a new MICRO_FN_HOME, a replaced credential) fails.
 * Login tokens are also remembered in memory until used or expired, so each works once and only for this serve.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** How long a login token printed by `micro-fn dashboard` works. */
export const LOGIN_TTL_MS = 60_000;
/** How long a session cookie works. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** Login tokens outstanding at most: past it the oldest goes (each call of `micro-fn dashboard` makes one). */
const OUTSTANDING = 64;

export interface SessionOptions {
  /** The control token of serve's credential. */
  control: string;
  /** Milliseconds a login token works (default LOGIN_TTL_MS). */
  loginTtl?: number;
  now?: () => number;
}

/** Makes and checks login tokens and session cookies. */
export class Sessions {
  readonly #key: Buffer;
  readonly #loginTtl: number;
  readonly #now: () => number;
  /** Login tokens made and not yet used: nonce → expiry. */
  readonly #outstanding = new Map<string, number>();

  constructor(options: SessionOptions) {
    // A key of its own: a leaked cookie or token reveals nothing about the control token, and is good for nothing else.
    this.#key = createHmac('sha256', options.control).update('micro-fn dashboard session key').digest();
    this.#loginTtl = options.loginTtl ?? LOGIN_TTL_MS;
    this.#now = options.now ?? Date.now;
  }

  /** A fresh login token, good once within the login TTL; and when it expires (ms since the epoch). */
  login(): { token: string; expires: number } {
    const now = this.#now();
    for (const [nonce, expires] of this.#outstanding) if (expires <= now) this.#outstanding.delete(nonce);
    if (this.#outstanding.size >= OUTSTANDING) this.#outstanding.delete(this.#outstanding.keys().next().value!);
    const expires = now + this.#loginTtl;
    const nonce = randomBytes(16).toString('base64url');
    this.#outstanding.set(nonce, expires);
    const body = `${expires.toString(36)}.${nonce}`;
    return { token: `${body}.${this.#mac('login', body)}`, expires };
  }

  /** Uses up a login token: true once for a token this serve made that has not expired; false otherwise. */
  redeem(token: string): boolean {
    const parts = token.split('.');
    if (parts.length !== 3) return false;
    const [exp, nonce, mac] = parts as [string, string, string];
    if (!this.#verify('login', `${exp}.${nonce}`, mac)) return false;
    const expires = this.#outstanding.get(nonce);
    this.#outstanding.delete(nonce);
    return expires !== undefined && expires > this.#now() && parseInt(exp, 36) === expires;
  }

  /** A session cookie's value, good for SESSION_TTL_MS. */
  session(): string {
    const body = `${(this.#now() + SESSION_TTL_MS).toString(36)}.${randomBytes(9).toString('base64url')}`;
    return `${body}.${this.#mac('session', body)}`;
  }

  /** Whether a cookie's value is a session this credential made that has not expired. */
  valid(value: string | undefined): boolean {
    if (!value) return false;
    const parts = value.split('.');
    if (parts.length !== 3) return false;
    const [exp, salt, mac] = parts as [string, string, string];
    return this.#verify('session', `${exp}.${salt}`, mac) && parseInt(exp, 36) > this.#now();
  }

  #mac(purpose: string, body: string): string {
    return createHmac('sha256', this.#key).update(`${purpose}:${body}`).digest('base64url');
  }

  #verify(purpose: string, body: string, mac: string): boolean {
    const expected = Buffer.from(this.#mac(purpose, body));
    const given = Buffer.from(mac);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
