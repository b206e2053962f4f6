/**
 * serve's request log: one line per invocation, from its event. Text for a person (coloured on a terminal), or
 * one JSON object per line (`serve --json`), the same objects the live feed sends.
 *
 *   12:03:04.117 helloworld Greeter.Hello 200 3.21ms warm 9b1c…
 *   12:03:05.502 events     orders#2      ok  41.7ms cold 7f0e…
 *   12:03:06.911 stream     Countdown.Count 200 3012.4ms warm 51aa… stream in 0 out 3
 */
import type { InvocationEvent } from './event.js';

/** The event as one JSON object: `type: "invocation"`, its time as ISO 8601, the rest as it is. */
export function invocationJson(event: InvocationEvent): Record<string, unknown> {
  const { at, ...rest } = event;
  return { type: 'invocation', time: new Date(at).toISOString(), ...rest };
}

/** One line of text for `event`, without a newline; `color` adds ANSI colours (a terminal, and no NO_COLOR). */
export function invocationLine(event: InvocationEvent, color: boolean): string {
  const paint = (code: string, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const what =
    event.kind === 'message'
      ? `${event.topic}#${event.attempt ?? 1}`
      : (event.endpoint ?? (event.kind === 'lambda' ? 'Invoke' : '-'));
  const status = event.kind === 'message' && event.ok ? 'ok ' : String(event.status);
  const tone = event.ok ? '32' : event.status >= 500 ? '31' : '33';
  const parts = [
    paint('2', clock(event.at)),
    event.function,
    what,
    paint(tone, status),
    `${event.ms < 10 ? event.ms.toFixed(2) : event.ms.toFixed(1)}ms`,
    event.started ? (event.cold ? paint('36', 'cold') : 'warm') : paint('33', 'not started'),
    paint('2', event.id),
  ];
  if (event.kind === 'lambda') parts[1] = `${event.function} (lambda)`;
  // A stream: the messages of the request's stream, and of the reply's (0: that side was one plain body).
  if (event.streamed) parts.push(`stream in ${event.streamed.in} out ${event.streamed.out}`);
  const line = parts.join(' ');
  return event.error && !event.ok ? `${line} ${paint(tone, event.error)}` : line;
}

/** `HH:MM:SS.mmm`, local time. */
function clock(at: number): string {
  const d = new Date(at);
  const two = (n: number) => (n < 10 ? `0${n}` : String(n));
  const ms = d.getMilliseconds();
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}`;
}

/**
 * Makes every line written to `stream` (serve's own messages) one JSON object: `{"type":"serve","time","message"}`.
 * For `serve --json`, so that everything serve prints is JSON lines, whichever part of it wrote the line.
 */
export function jsonLines(stream: NodeJS.WriteStream, type = 'serve'): void {
  const write = stream.write.bind(stream) as (chunk: string, callback?: (err?: Error | null) => void) => boolean;
  let partial = '';
  stream.write = ((chunk: string | Uint8Array, encoding?: unknown, callback?: unknown) => {
    const done = (typeof encoding === 'function' ? encoding : callback) as ((err?: Error | null) => void) | undefined;
    partial += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop()!;
    const time = new Date().toISOString();
    const text = lines.map((message) => `${JSON.stringify({ type, time, message })}\n`).join('');
    if (text === '') {
      done?.();
      return true;
    }
    return write(text, done);
  }) as typeof stream.write;
}
