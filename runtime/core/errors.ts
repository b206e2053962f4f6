/**
 * The one error type that crosses every boundary in micro-fn.
 *
 * On the wire it is go-micro's JSON `{"id","code","detail","status"}`, in an HTTP body, a `Micro-Error`
 * header, NATS headers, a Lambda payload or the CLI's `--json` output.
 */

const STATUS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  417: 'Expectation Failed',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  /** nginx's: the caller went away (a stream it stopped reading). */
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/**
 * Codes of errors raised here (not read off a wire) that are retryable unless told otherwise: refusals, "not
 * accepted". A 408, 500, 502 or 504 may come after a request reached a handler, so they never are by default.
 */
const RETRYABLE_CODES = new Set([429, 503]);

/**
 * The error id of a refusal that provably never reached a handler: a one-shot instance that had already taken its
 * invocation, a listener that is closing or full, a queue that did not take (or keep) the call. It is the only
 * thing a client trusts, in an error read off the wire, to send a request again: a status alone never is (a handler
 * may throw a 503, a proxy may answer 502 after passing the request on). See `notStarted`.
 */
export const NOT_STARTED = 'micro-fn.not-started';

/** The JSON shape of an error on the wire. */
export interface ErrorJSON {
  id: string;
  code: number;
  detail: string;
  status: string;
}

export interface MicroErrorOptions {
  /** Overrides the retryable-by-code rule, e.g. a 500 from a connection that never reached a server. */
  retryable?: boolean;
  /**
   * The node could not be reached at all (the connection was refused, its host does not exist, nothing answers on
   * its subject): nothing was sent, and the node is gone. Implies `retryable`; a client skips the node for a while.
   */
  unreachable?: boolean;
  cause?: unknown;
}

/** The text HTTP gives a status code (`404` -> `"Not Found"`), or `""` when it has none we know. */
export function statusText(code: number): string {
  return STATUS[code] ?? '';
}

export class MicroError extends Error {
  override readonly name = 'MicroError' as const;
  /** Who raised it: usually the service name. */
  readonly id: string;
  /** HTTP-like status code. */
  readonly code: number;
  readonly detail: string;
  readonly status: string;
  /**
   * Whether a client may send the request again: only when it provably never reached a handler. Local knowledge:
   * it does not travel; an error read off the wire is retryable only with the id NOT_STARTED (`parseError`).
   */
  readonly retryable: boolean;
  /** The node could not be reached at all (see MicroErrorOptions). Local knowledge, like `retryable`. */
  readonly unreachable: boolean;

  constructor(id: string, code: number, detail: string, options: MicroErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.id = id;
    this.code = code;
    this.detail = detail;
    this.status = statusText(code);
    this.unreachable = options.unreachable === true;
    this.retryable = options.retryable ?? (this.unreachable || id === NOT_STARTED || RETRYABLE_CODES.has(code));
  }

  toJSON(): ErrorJSON {
    return { id: this.id, code: this.code, detail: this.detail, status: this.status };
  }

  /** The wire form: `{"id":"helloworld","code":400,"detail":"name is required","status":"Bad Request"}`. */
  override toString(): string {
    return JSON.stringify(this.toJSON());
  }
}

/** True for a MicroError, also one made by another copy of this module (a bundle and the CLI, say). */
export function isMicroError(value: unknown): value is MicroError {
  return (
    value instanceof MicroError ||
    (value instanceof Error && value.name === 'MicroError' && typeof (value as MicroError).code === 'number')
  );
}

/**
 * Turns anything thrown into a MicroError. A MicroError passes through; anything else becomes a 500 whose
 * detail never includes a stack trace (the original is kept as `cause`, for logs only).
 */
export function toMicroError(value: unknown, id = 'micro-fn'): MicroError {
  if (value instanceof MicroError) return value;
  if (isMicroError(value)) {
    // From another copy of this module: rebuild it so only the wire fields go out.
    const { id: from, code, detail, retryable, unreachable } = value;
    return new MicroError(typeof from === 'string' ? from : id, code, typeof detail === 'string' ? detail : '', {
      retryable,
      unreachable: unreachable === true,
      cause: value,
    });
  }
  return new MicroError(id, 500, 'internal server error', { cause: value });
}

/**
 * Reads an error from its wire form (a JSON string, bytes, or an already parsed object). Anything that is not
 * an error JSON becomes a generic remote error with `fallbackCode`, never a crash. It is retryable only when its id
 * is NOT_STARTED: whatever else came back may have come from a handler that ran.
 */
export function parseError(input: unknown, fallbackCode = 500, fallbackId = 'remote'): MicroError {
  let value = input;
  try {
    if (value instanceof Uint8Array) value = new TextDecoder().decode(value);
    if (typeof value === 'string') value = JSON.parse(value);
  } catch {
    // not JSON: fall through to the generic error below
  }
  if (typeof value === 'object' && value !== null) {
    const { id, code, detail } = value as Partial<ErrorJSON>;
    if (typeof code === 'number' && Number.isInteger(code) && code >= 100 && code <= 599) {
      return fromWire(typeof id === 'string' ? id : fallbackId, code, typeof detail === 'string' ? detail : '');
    }
  }
  const text = typeof input === 'string' ? input : statusText(fallbackCode) || 'remote error';
  return fromWire(fallbackId, fallbackCode, text.slice(0, 512));
}

/**
 * An error as a caller rebuilds it from the wire fields: retryable only when its id is NOT_STARTED. Transports that
 * do not parse JSON (an in-process one) rebuild errors with it.
 */
export function fromWire(id: string, code: number, detail: string): MicroError {
  return new MicroError(id, code, detail, { retryable: id === NOT_STARTED });
}

/**
 * A refusal that provably never reached a handler, which a client may send again (to another node): a one-shot
 * instance that had already taken its invocation, a listener that is closing or full (503), a queue that did not
 * take or keep the call (429). Its id is NOT_STARTED; `detail` names the service.
 * @example
 * return reply(errorReply(notStarted(503, `function ${name} has already taken its one invocation; try another instance`)));
 */
export function notStarted(code: 429 | 503, detail: string): MicroError {
  return new MicroError(NOT_STARTED, code, detail, { retryable: true });
}

/**
 * A mistake in how micro-fn is used (a bad setting, a function file without a default export): hosts print
 * its message as one line, without a stack.
 */
export class UserError extends Error {
  override readonly name = 'UserError' as const;
}

type ErrorHelper = (id: string, detail?: string, options?: MicroErrorOptions) => MicroError;

function helper(code: number): ErrorHelper {
  return (id, detail = statusText(code), options) => new MicroError(id, code, detail, options);
}

/**
 * One helper per common status, go-micro style.
 * @example
 * throw errors.badRequest('helloworld', 'name is required');
 */
export const errors = {
  badRequest: helper(400),
  unauthorized: helper(401),
  forbidden: helper(403),
  notFound: helper(404),
  methodNotAllowed: helper(405),
  timeout: helper(408),
  conflict: helper(409),
  payloadTooLarge: helper(413),
  tooManyRequests: helper(429),
  internal: helper(500),
  unavailable: helper(503),
} as const;
