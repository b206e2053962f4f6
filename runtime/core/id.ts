/**
 * A unique id in UUID v4 form, for request, message and node ids. Drawn from Math.random (seeded per process
 * by the runtime) rather than Web Crypto: ids must not collide, they need not be secret, and touching
 * `crypto` costs a one-shot process milliseconds of start-up in Node.
 */
export function newId(): string {
  const hex = (n: number, digits: number) =>
    Math.floor(Math.random() * n)
      .toString(16)
      .padStart(digits, '0');
  const variant = (8 + Math.floor(Math.random() * 4)).toString(16);
  return `${hex(2 ** 32, 8)}-${hex(2 ** 16, 4)}-4${hex(2 ** 12, 3)}-${variant}${hex(2 ** 12, 3)}-${hex(2 ** 24, 6)}${hex(2 ** 24, 6)}`;
}
