/**
 * The few Deno APIs this adapter touches, with Deno's own names (the same shapes as Deno's built-in
 * `lib.deno.ns.d.ts`, which micro-fn does not depend on). The global is read through `denoNamespace()`, not
 * declared, so nothing here changes the types of code that is not the Deno handler.
 */
import type { ServerSocket } from '../../runtime/plugins/http/socket-wire.js';

/** `Deno.env`: reading a variable needs `--allow-env` for it (a pattern such as `MICRO_*` will do). */
export interface Env {
  get(key: string): string | undefined;
  /** Every variable: needs `--allow-env` without a list. */
  toObject(): Record<string, string>;
}

/** The part of the `Deno` namespace the handler reads. */
export interface DenoNamespace {
  readonly env: Env;
  /** Answers a WebSocket handshake: return `response` (the 101); `socket` opens once it went out. */
  upgradeWebSocket?(request: Request): { socket: ServerSocket; response: Response };
}

/** What `deno serve` passes as the handler's second argument. */
export interface ServeHandlerInfo {
  readonly remoteAddr: { readonly transport: string; readonly hostname?: string; readonly port?: number };
}

/** What a module `deno serve` runs exports by default (`Deno.ServeDefaultExport`). */
export interface ServeDefaultExport {
  fetch(request: Request, info?: ServeHandlerInfo): Response | Promise<Response>;
}

/** The `Deno` global, or undefined outside Deno. */
export function denoNamespace(): DenoNamespace | undefined {
  // Platform seam: the global exists only on Deno and is not in this project's types.
  return (globalThis as { Deno?: DenoNamespace }).Deno;
}
