/** Listen addresses in go-micro's forms: `127.0.0.1:0`, `:8080`, `[::1]:0`, `http://host:port`. */
import { ConfigError } from '../../core/index.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Where the HTTP listener binds when no address is given: loopback, a free port. */
export const DEFAULT_LISTEN_ADDRESS = '127.0.0.1:0';

const FORM = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/[\]]*)):(\d{1,5})$/;

/**
 * Parses a listen address. `:PORT` binds every interface, as in Go. Throws a ConfigError that shows the
 * accepted forms.
 */
export function parseListenAddress(address: string = DEFAULT_LISTEN_ADDRESS): ListenAddress {
  let rest = address.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(rest);
  if (scheme) {
    if (scheme[1]!.toLowerCase() !== 'http') {
      throw new ConfigError(
        `the HTTP listener serves plain http:// only (put a TLS proxy in front for https); got "${address}"`,
      );
    }
    rest = rest.slice(scheme[0].length).replace(/\/.*$/, '');
  }
  const match = FORM.exec(rest);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new ConfigError(
      `an HTTP listen address looks like 127.0.0.1:0, :8080, [::1]:8080 or http://host:port; got "${address}"`,
    );
  }
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

/** The node address to register for a bound socket: `http://host:port`, IPv6 in brackets. */
export function nodeAddress(host: string, port: number): string {
  // A wildcard bind is reachable on loopback; pass `advertise` to register an address other hosts can reach.
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;
}
