/**
 * Who may call what under `micro-fn serve --auth`: go-micro's auth rules, by service and endpoint. A rule makes a
 * resource public, open to any authenticated caller, or open to callers holding one of some scopes. The most specific
 * rule for a resource decides (an exact endpoint over `Service.*` over a whole service over `*`); with none, any
 * authenticated caller may call (the default). Rules live in `MICRO_FN_HOME/auth/rules.json` (0600), written by
 * `micro-fn auth rule …` and re-read by serve when the file changes.
 */
import {
  chmodSync,
  mkdirSync,
  readFileSync,
  renameSync,
  unwatchFile,
  watchFile,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../runtime/core/errors.js';
import type { Account } from './jwt.js';

/** `public`: anyone, even without a token; `account`: any valid token; `scopes`: a token holding one of `scopes`. */
export type Access = 'public' | 'account' | 'scopes';

export interface Rule {
  /** `service/endpoint`: `helloworld/Greeter.Hello`, `helloworld/Greeter.*`, `helloworld` (every endpoint), `*`. */
  resource: string;
  access: Access;
  /** For `scopes`: a caller needs one of them. */
  scopes?: string[];
}

/** What a rule check comes to: granted, no (valid) token (401), or a token without the scope (403). */
export type Decision = 'granted' | 'unauthorized' | 'forbidden';

/** The rule that applies when no other does: any authenticated caller. */
export const DEFAULT_RULE: Rule = { resource: '*', access: 'account' };

const RESOURCE = /^(?:\*|[^/\s*]+(?:\/(?:\*|[\w$]+\.\*|[\w$]+\.[\w$]+))?)$/;

/** Where the rules of `home` live. */
export function rulesPath(home: string): string {
  return join(home, 'auth', 'rules.json');
}

/** Checks a rule as a user wrote it; the error says how to write it. */
export function checkRule(rule: Rule): Rule {
  if (!RESOURCE.test(rule.resource))
    throw new UserError(
      `"${rule.resource}" is not a resource: use SERVICE/Service.Method, SERVICE/Service.*, SERVICE (every endpoint) or *`,
    );
  if (rule.access === 'scopes' && (!rule.scopes?.length || rule.scopes.some((s) => !/^[\w.:-]+$/.test(s))))
    throw new UserError('a scopes rule needs one or more scopes of letters, digits, _ . : -, like --scope admin,ops');
  return rule.access === 'scopes' ? { resource: rule.resource, access: 'scopes', scopes: [...rule.scopes!] } : rule;
}

/** Parses the rules file's text. */
export function parseRules(text: string, where: string): Rule[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const list = (value as { rules?: unknown } | undefined)?.rules;
  if (!Array.isArray(list))
    throw new UserError(`${where} is not a rules file ({"rules": [...]}): fix it, or remove it to keep the default`);
  return list.map((r: Rule) => {
    if (typeof r !== 'object' || r === null || !['public', 'account', 'scopes'].includes(r.access))
      throw new UserError(`${where}: ${JSON.stringify(r)} is not a rule`);
    return checkRule(r);
  });
}

/** The rules of `home`; none when there is no file. */
export function readRules(home: string): Rule[] {
  const path = rulesPath(home);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseRules(text, path);
}

/** Replaces the rules of `home`: written to a temporary file (0600) and renamed, so serve never reads half a file. */
export function writeRules(home: string, rules: readonly Rule[]): void {
  const path = rulesPath(home);
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  chmodSync(join(path, '..'), 0o700);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify({ rules }, null, 2)}\n`, { mode: 0o600 });
  renameSync(temporary, path);
}

/** How specific a rule's resource is: an exact endpoint, then `Service.*`, then a whole service, then `*`. */
function specificity(resource: string): number {
  if (resource === '*') return 0;
  const endpoint = resource.split('/')[1];
  if (endpoint === undefined || endpoint === '*') return 1;
  return endpoint.endsWith('.*') ? 2 : 3;
}

function matches(resource: string, service: string, endpoint: string): boolean {
  if (resource === '*') return true;
  const slash = resource.indexOf('/');
  const name = slash === -1 ? resource : resource.slice(0, slash);
  if (name !== service) return false;
  const pattern = slash === -1 ? '*' : resource.slice(slash + 1);
  if (pattern === '*') return true;
  return pattern.endsWith('.*') ? endpoint.startsWith(pattern.slice(0, -1)) : pattern === endpoint;
}

/** The rule that decides for `service`/`endpoint`: the most specific match; DEFAULT_RULE when none matches. */
export function ruleFor(rules: readonly Rule[], service: string, endpoint: string): Rule {
  let best: Rule | undefined;
  for (const rule of rules)
    if (matches(rule.resource, service, endpoint) && (!best || specificity(rule.resource) > specificity(best.resource)))
      best = rule;
  return best ?? DEFAULT_RULE;
}

/** What `rule` says of a caller with `account` (undefined: no token). */
export function decide(rule: Rule, account: Account | undefined): Decision {
  if (rule.access === 'public') return 'granted';
  if (!account) return 'unauthorized';
  if (rule.access === 'account') return 'granted';
  return rule.scopes!.some((s) => account.scopes.includes(s)) ? 'granted' : 'forbidden';
}

/**
 * serve's view of the rules: read at start, re-read when the file changes (polled twice a second, so a rule added
 * with the CLI applies within a second, without a restart), and the deciding rule kept per resource.
 */
export class RuleStore {
  readonly #path: string;
  readonly #home: string;
  #rules: Rule[];
  #byResource = new Map<string, Rule>();
  readonly #say: (line: string) => void;
  readonly #changed = (now: Stats, before: Stats) => {
    if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino || now.size !== before.size) this.#reload();
  };

  constructor(home: string, say: (line: string) => void) {
    this.#home = home;
    this.#path = rulesPath(home);
    this.#say = say;
    this.#rules = readRules(home);
    watchFile(this.#path, { interval: 500, persistent: false }, this.#changed);
  }

  /** The rule that decides for `service`/`endpoint`. */
  ruleFor(service: string, endpoint: string): Rule {
    const key = `${service}\n${endpoint}`;
    let rule = this.#byResource.get(key);
    if (!rule) {
      rule = ruleFor(this.#rules, service, endpoint);
      // Bounded: resource names come from callers; past the bound, the lookups start over.
      if (this.#byResource.size >= 10_000) this.#byResource.clear();
      this.#byResource.set(key, rule);
    }
    return rule;
  }

  #reload(): void {
    try {
      this.#rules = readRules(this.#home);
      this.#byResource = new Map();
      this.#say(`auth rules reloaded: ${this.#rules.length} rule${this.#rules.length === 1 ? '' : 's'}`);
    } catch (err) {
      this.#say(`auth rules not reloaded, the previous ones still apply: ${(err as Error).message}`);
    }
  }

  close(): void {
    unwatchFile(this.#path, this.#changed);
  }
}
