/**
 * What `micro-fn serve` checks before it dispatches a request, in one place (LocalRuntime's request handler calls it
 * first): the control token on every endpoint of the control service, and under `--auth` a JWT on every call through
 * the gateway (functions, and Broker.Publish), checked against the rules. Verified tokens are kept until they expire,
 * so a warm call pays a map lookup, not a signature check.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Credential } from '../../runtime/core/credential.js';
import { MicroError, errors } from '../../runtime/core/errors.js';
import type { Metadata } from '../../runtime/core/metadata.js';
import { RUNTIME_SERVICE } from '../../runtime/plugins/local/protocol.js';
import { signToken, signingKey, verifyToken, type Account } from './jwt.js';
import { decide, RuleStore, type Rule } from './rules.js';

export interface GuardOptions {
  credential: Credential;
  /** MICRO_FN_HOME: where the rules are. */
  home: string;
  /** `serve --auth`: calls through the gateway need a token. */
  tokens: boolean;
  /** One line on serve's output. */
  say(line: string): void;
}

/** The scope serve gives the tokens of the functions it runs. */
export const FUNCTION_SCOPE = 'function';

/** Verified tokens kept at most; past it the oldest goes. */
const CACHE_LIMIT = 10_000;
const FUNCTION_ID = 'function:';

export class Guard {
  /** SHA-256 of the control token: compared in constant time with the digest of what a caller sends. */
  readonly #control: Buffer;
  readonly #key: Uint8Array | undefined;
  readonly #rules: RuleStore | undefined;
  readonly #verified = new Map<string, Account>();
  /** Function tokens serve issued and has not revoked: id → the function's name. */
  readonly #issued = new Map<string, string>();

  constructor(options: GuardOptions) {
    this.#control = digest(options.credential.control);
    if (options.tokens) {
      this.#key = signingKey(options.credential.jwtKey);
      this.#rules = new RuleStore(options.home, options.say);
    }
  }

  /** True under `--auth`. */
  get tokens(): boolean {
    return this.#key !== undefined;
  }

  /** A 401 unless `metadata` carries the control token. */
  control(metadata: Metadata): MicroError | undefined {
    const header = metadata.get('authorization');
    const token = header === undefined ? undefined : bearerOf(header);
    if (token !== undefined && this.#isControl(token)) return undefined;
    return errors.unauthorized(
      'micro-fn',
      "the micro-fn control service needs serve's credential: send Authorization: Bearer <control token of MICRO_FN_HOME/auth/credential.json> (the micro-fn CLI of the same user and MICRO_FN_HOME sends it by itself)",
    );
  }

  /**
   * Under `--auth`, whether the caller in `metadata` may call `endpoint` of `service` (a function, or the control
   * service's Broker.Publish, where serve's control token also counts): undefined when it may, else the 401 or 403.
   * Synchronous when the token was seen before.
   */
  call(
    service: string,
    endpoint: string,
    metadata: Metadata,
  ): MicroError | undefined | Promise<MicroError | undefined> {
    const rules = this.#rules;
    if (!rules) return undefined;
    const rule = rules.ruleFor(service, endpoint);
    if (rule.access === 'public') return undefined;
    // Kept by the whole header: a token seen before costs one lookup, not even its parsing.
    const header = metadata.get('authorization');
    const known = header === undefined ? undefined : this.#verified.get(header);
    if (known) return this.#judge(rule, known, header!, service, endpoint);
    const token = header === undefined ? undefined : bearerOf(header);
    if (token === undefined)
      return errors.unauthorized(
        service,
        `${service}/${endpoint} needs a token: send Authorization: Bearer <token> (make one with micro-fn auth token)`,
      );
    if (service === RUNTIME_SERVICE && endpoint === 'Broker.Publish' && this.#isControl(token)) return undefined;
    return verifyToken(this.#key!, token).then((result) => {
      if (result instanceof MicroError) return result;
      if (this.#verified.size >= CACHE_LIMIT) this.#verified.delete(this.#verified.keys().next().value!);
      this.#verified.set(header!, result);
      return this.#judge(rule, result, header!, service, endpoint);
    });
  }

  #judge(rule: Rule, account: Account, header: string, service: string, endpoint: string): MicroError | undefined {
    if (account.expires !== undefined && account.expires * 1000 <= Date.now()) {
      this.#verified.delete(header);
      return errors.unauthorized(service, 'the token has expired: make a new one with micro-fn auth token');
    }
    if (account.id?.startsWith(FUNCTION_ID) && !this.#issued.has(account.id))
      return errors.unauthorized(service, 'the token was revoked: the function it was given to is no longer deployed');
    const decision = decide(rule, account);
    if (decision === 'granted') return undefined;
    return errors.forbidden(
      service,
      `${account.name} may not call ${service}/${endpoint}: it needs a token with scope ${rule.scopes?.join(' or ')}`,
    );
  }

  /**
   * A token for a function serve runs (scope `function`, no expiry: revoked with `revoke(id)` when the function
   * goes). `id` stays the same across the function's tokens; `name` is its name once known.
   */
  async functionToken(id: string, name = 'function'): Promise<string> {
    const key = `${FUNCTION_ID}${id}`;
    this.#issued.set(key, name);
    return signToken(this.#key!, { subject: name, scopes: [FUNCTION_SCOPE], id: key });
  }

  /** A fresh id for functionToken. */
  newFunctionId(): string {
    return randomUUID();
  }

  /** Ends the tokens of function `id`. */
  revoke(id: string): void {
    this.#issued.delete(`${FUNCTION_ID}${id}`);
  }

  close(): void {
    this.#rules?.close();
  }

  #isControl(token: string): boolean {
    return timingSafeEqual(digest(token), this.#control);
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The token of an `Authorization: Bearer <token>` header, if it is one. */
function bearerOf(header: string): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}
