/**
 * The tokens `micro-fn serve --auth` checks: JWTs signed with HS256 by the key in serve's credential, carrying
 * go-micro's account (a subject and its scopes). The only module that imports `jose`, and only when a token is made
 * or checked: serve without `--auth` never loads it.
 */
import { errors, type MicroError } from '../../runtime/core/errors.js';

/** Who a token speaks for (go-micro's Account). */
export interface Account {
  /** `sub`: a user's name, or the function serve gave the token to. */
  name: string;
  scopes: string[];
  /** `exp`, epoch seconds; absent: until its key changes or serve revokes it (function tokens, by `id`). */
  expires?: number;
  /** `jti`, for tokens serve revokes (a function's, when the function is removed). */
  id?: string;
}

export interface TokenOptions {
  subject: string;
  scopes: readonly string[];
  /** Seconds the token is valid for; absent: no expiry (serve's function tokens, which it revokes by `id`). */
  ttl?: number;
  id?: string;
}

const ISSUER = 'micro-fn';
const ALGORITHM = 'HS256';

// Node keeps the module once loaded: a later import() is a lookup.
const load = () => import('jose');

/** The signing key of a credential's `jwtKey` (base64url). */
export function signingKey(jwtKey: string): Uint8Array {
  return new Uint8Array(Buffer.from(jwtKey, 'base64url'));
}

/**
 * A signed token.
 * @example
 * const token = await signToken(signingKey(credential.jwtKey), { subject: 'ada', scopes: ['admin'], ttl: 3600 });
 * await fetch(gateway + '/helloworld/Greeter.Hello', { method: 'POST', headers: { authorization: `Bearer ${token}` } });
 */
export async function signToken(key: Uint8Array, options: TokenOptions): Promise<string> {
  const { SignJWT } = await load();
  let jwt = new SignJWT({ scopes: [...options.scopes] })
    .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setSubject(options.subject)
    .setIssuedAt();
  // Rounded up: a token lives at least `ttl` seconds (rounded down, a 1 s token could expire at once).
  if (options.ttl !== undefined) jwt = jwt.setExpirationTime(Math.ceil(Date.now() / 1000) + options.ttl);
  if (options.id !== undefined) jwt = jwt.setJti(options.id);
  return jwt.sign(key);
}

/** The account `token` speaks for, or the 401 that says why it does not. */
export async function verifyToken(key: Uint8Array, token: string): Promise<Account | MicroError> {
  const { jwtVerify, errors: joseErrors } = await load();
  try {
    const { payload } = await jwtVerify(token, key, { algorithms: [ALGORITHM], issuer: ISSUER });
    const scopes = payload.scopes;
    if (typeof payload.sub !== 'string' || !Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string'))
      return errors.unauthorized(
        'micro-fn',
        'the token names no subject and scopes: make one with micro-fn auth token',
      );
    return {
      name: payload.sub,
      scopes: scopes as string[],
      ...(payload.exp !== undefined ? { expires: payload.exp } : {}),
      ...(payload.jti !== undefined ? { id: payload.jti } : {}),
    };
  } catch (err) {
    const why =
      err instanceof joseErrors.JWTExpired
        ? 'the token has expired: make a new one with micro-fn auth token'
        : err instanceof joseErrors.JWSSignatureVerificationFailed
          ? "the token's signature does not match: it was not signed by this serve's key, or it was altered"
          : `the token is not valid (${(err as Error).message})`;
    return errors.unauthorized('micro-fn', why);
  }
}
