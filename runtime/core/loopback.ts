/**
 * Whether an address stays on this machine. serve's credential is sent only to loopback addresses, and serve refuses
 * to bind anything else without `--auth`.
 */

/** True for `localhost`, 127.0.0.0/8 and `::1` (with or without brackets). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** True for `http(s)://127.x.x.x`, `localhost` and `[::1]` URLs. */
export function isLoopback(url: string): boolean {
  try {
    return isLoopbackHost(new URL(url).hostname);
  } catch {
    return false;
  }
}
