/**
 * AWS Signature Version 4, checked the way AWS checks it, for serve's local Lambda API: the `Authorization:
 * AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header form, the canonical request and string to sign
 * as AWS documents them, `x-amz-date` within AWS's 15 minutes of serve's clock, and the payload hash over the body.
 * What the form, the key and the date say is checked before the body is read (`check`); the signature, which covers
 * the body, once it has been (`verify`). Failures are AWS's own 403s.
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AwsKeyPair } from '../../runtime/core/credential.js';
import { LambdaApiError } from './api-error.js';

/** A key serve accepts; `invokeOnly` keys may call Invoke and nothing else. */
export interface AcceptedKey extends AwsKeyPair {
  invokeOnly: boolean;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
/** AWS's bound on the difference between the request's time and the server's. */
const MAX_SKEW_MS = 15 * 60 * 1000;
const SERVICE = 'lambda';

/** AWS's 403s, by the names Lambda answers with. */
export const authErrors = {
  missing: () => new LambdaApiError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token'),
  incomplete: (message: string) => new LambdaApiError(403, 'IncompleteSignatureException', message),
  unknownKey: () =>
    new LambdaApiError(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.'),
  signature: (message: string) => new LambdaApiError(403, 'InvalidSignatureException', message),
  denied: (message: string) => new LambdaApiError(403, 'AccessDeniedException', message),
} as const;

const MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** A request whose signature's form, key and date are good; `verify` checks the signature itself. */
export interface SignedRequest {
  key: AcceptedKey;
  /** Throws InvalidSignatureException unless the signature matches `body`. */
  verify(body: Uint8Array): void;
}

/**
 * Checks what can be checked before the body is read: the header's form, the key and the date.
 * @example
 * const signed = checkSignature(req, keys);  // 403 LambdaApiError when unsigned, unknown or stale
 * signed.verify(await readBody(req));         // 403 when the signature does not match
 */
export function checkSignature(
  req: IncomingMessage,
  keys: ReadonlyMap<string, AcceptedKey>,
  now = Date.now(),
): SignedRequest {
  const authorization = req.headers.authorization;
  if (!authorization) throw authErrors.missing();
  const match = /^(\S+)\s+(.*)$/.exec(authorization.trim());
  if (!match || match[1] !== ALGORITHM)
    throw authErrors.incomplete(`Authorization header requires the ${ALGORITHM} algorithm (Signature Version 4)`);
  const fields = new Map<string, string>();
  for (const part of match[2]!.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature)
    throw authErrors.incomplete(
      "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
    );
  const [accessKeyId, day, region, service, terminator, ...extra] = credential.split('/');
  if (!accessKeyId || !day || !region || service !== SERVICE || terminator !== 'aws4_request' || extra.length)
    throw authErrors.incomplete(
      `Credential should be scoped to a valid region and to the ${SERVICE} service: KEY/YYYYMMDD/REGION/${SERVICE}/aws4_request`,
    );
  const key = keys.get(accessKeyId);
  if (!key) throw authErrors.unknownKey();
  const amzDate = single(req, 'x-amz-date');
  const time = amzDate === undefined ? NaN : parseAmzDate(amzDate);
  if (Number.isNaN(time))
    throw authErrors.incomplete('The request needs an X-Amz-Date header of the form YYYYMMDDTHHMMSSZ');
  if (amzDate!.slice(0, 8) !== day)
    throw authErrors.signature(
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${day}' != '${amzDate!.slice(0, 8)}'`,
    );
  if (time < now - MAX_SKEW_MS)
    throw authErrors.signature(
      `Signature expired: ${amzDate} is now earlier than ${amz(now - MAX_SKEW_MS)} (${amz(now)} - 15 min.)`,
    );
  if (time > now + MAX_SKEW_MS)
    throw authErrors.signature(
      `Signature not yet current: ${amzDate} is still later than ${amz(now + MAX_SKEW_MS)} (${amz(now)} + 15 min.)`,
    );
  const names = signedHeaders.split(';').sort();
  if (!names.includes('host') || !names.includes('x-amz-date') || names.some((n) => n !== n.toLowerCase()))
    throw authErrors.signature("'Host' and 'X-Amz-Date' must be signed, and SignedHeaders listed in lower case");
  if (!/^[0-9a-f]{64}$/.test(signature)) throw authErrors.signature(MISMATCH);
  const scope = `${day}/${region}/${SERVICE}/aws4_request`;
  return {
    key,
    verify(body) {
      const payloadHash = sha256(body);
      const declared = single(req, 'x-amz-content-sha256');
      if (declared !== undefined && declared !== payloadHash)
        throw authErrors.signature('The provided x-amz-content-sha256 header does not match what was computed.');
      const canonical = canonicalRequest(req, names, payloadHash);
      const toSign = [ALGORITHM, amzDate, scope, sha256(canonical)].join('\n');
      const signingKey = [day, region, SERVICE, 'aws4_request'].reduce<Buffer>(
        (k, part) => hmac(k, part),
        Buffer.from(`AWS4${key.secretAccessKey}`),
      );
      const expected = hmac(signingKey, toSign);
      if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) throw authErrors.signature(MISMATCH);
    },
  };
}

/** The canonical request: method, URI, query, headers, signed header names, payload hash. */
export function canonicalRequest(req: IncomingMessage, names: readonly string[], payloadHash: string): string {
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  const query = q === -1 ? '' : raw.slice(q + 1);
  const values = new Map<string, string[]>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (!names.includes(name)) continue;
    const list = values.get(name) ?? [];
    list.push(req.rawHeaders[i + 1]!.trim().replace(/\s+/g, ' '));
    values.set(name, list);
  }
  const headers = names.map((n) => `${n}:${(values.get(n) ?? []).join(',')}\n`).join('');
  return [req.method ?? 'GET', canonicalUri(path), canonicalQuery(query), headers, names.join(';'), payloadHash].join(
    '\n',
  );
}

/**
 * The path as AWS services other than S3 sign it: dot segments and empty segments removed, then every character but
 * the unreserved ones percent-encoded again (the path on the wire is already encoded once, so it is encoded twice).
 */
function canonicalUri(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const normalized = `/${segments.join('/')}${segments.length > 0 && path.endsWith('/') ? '/' : ''}`;
  return normalized.split('/').map(uriEncode).join('/');
}

/** Parameters sorted by name then value, each name and value decoded and encoded as AWS encodes them. */
function canonicalQuery(query: string): string {
  if (query === '') return '';
  const pairs = query
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const eq = p.indexOf('=');
      const [name, value] = eq === -1 ? [p, ''] : [p.slice(0, eq), p.slice(eq + 1)];
      return [uriEncode(decode(name)), uriEncode(decode(value))] as const;
    });
  pairs.sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw authErrors.signature(MISMATCH);
  }
}

/** AWS's UriEncode: every byte but A-Z a-z 0-9 - _ . ~ as %XX, upper-case hex. */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function single(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value.trim() : undefined;
}

/** Epoch milliseconds of `YYYYMMDDTHHMMSSZ`, NaN when it is not one. */
function parseAmzDate(text: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : NaN;
}

function amz(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}
