/**
 * Dead-lettered messages, kept in a file per topic so `micro-fn dlq` can list and replay them after a restart. A
 * dead letter that cannot be written is kept in memory (listed and replayed like the others, written to the file
 * at the next chance) and the failure is reported once: none is lost silently.
 */
import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { failedAttempts, type BrokerMessage } from '../runtime/core/broker.js';
import { errors } from '../runtime/core/errors.js';
import { RUNTIME_SERVICE, type DeadLetter } from '../runtime/plugins/local/protocol.js';
import { fileName } from './validate.js';

/** Bytes of dead letters held in memory at most while their files cannot be written; past it the oldest go, said so. */
const MAX_HELD_BYTES = 64 * 1024 * 1024;

/** Where `micro-fn dlq` finds a topic's dead letters, and how it hands them back. */
export interface DeadLetterBox {
  list(topic: string): Promise<DeadLetter[]>;
  /**
   * Hands every dead letter of `topic` back for another round of attempts; resolves with how many. `publish`
   * publishes one on the topic again, for a box that cannot hand them back itself.
   */
  replay(topic: string, publish: (body: Uint8Array, headers: Record<string, string>) => Promise<void>): Promise<number>;
}

/** Dead letters received on `dlq.<topic>` and kept in a file per topic: for brokers that keep none themselves. */
export class DeadLetters implements DeadLetterBox {
  readonly #dir: string;
  readonly #report: (line: string) => void;
  /** Dead letters not yet in their file, by topic. */
  readonly #held = new Map<string, DeadLetter[]>();
  #heldBytes = 0;
  /** Failures already reported, by topic and error code: each is said once. */
  readonly #reported = new Set<string>();
  /** One write at a time per topic, in order. */
  readonly #writing = new Map<string, Promise<void>>();

  /** `report` receives a line for serve's stderr when a dead letter cannot be written (default: stderr). */
  constructor(home: string, report: (line: string) => void = (line) => void process.stderr.write(`${line}\n`)) {
    this.#dir = join(home, 'dlq');
    this.#report = report;
  }

  #file(topic: string): string {
    return join(this.#dir, fileName(topic, '.jsonl'));
  }

  /** Keeps a dead letter; never rejects (a letter that cannot be written stays in memory). */
  add(topic: string, message: BrokerMessage): Promise<void> {
    const letter: DeadLetter = {
      id: message.id,
      topic,
      headers: message.headers,
      body: new TextDecoder().decode(message.body),
      at: new Date().toISOString(),
      attempts: failedAttempts(message.headers),
    };
    this.#hold(topic, letter);
    return this.#flush(topic);
  }

  /** Held letters of `topic`, then every held letter written, in order: one write at a time per topic. */
  #flush(topic: string): Promise<void> {
    const next = (this.#writing.get(topic) ?? Promise.resolve()).then(() => this.#write(topic));
    this.#writing.set(topic, next);
    void next.then(() => {
      if (this.#writing.get(topic) === next) this.#writing.delete(topic);
    });
    return next;
  }

  async #write(topic: string): Promise<void> {
    const letters = this.#held.get(topic)?.slice();
    if (!letters?.length) return;
    const text = letters.map((l) => `${JSON.stringify(l)}\n`).join('');
    try {
      await mkdir(this.#dir, { recursive: true });
      await appendFile(this.#file(topic), text);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      const key = `${topic}\0${code}`;
      if (!this.#reported.has(key)) {
        this.#reported.add(key);
        this.#report(
          `[micro-fn serve] cannot write dead letters of ${topic} to ${this.#file(topic)}: ${code}; ${letters.length} kept in memory (\`micro-fn dlq ${topic}\` lists them) until the file can be written`,
        );
      }
      return;
    }
    this.#release(topic, letters.length);
  }

  #hold(topic: string, letter: DeadLetter): void {
    const list = this.#held.get(topic) ?? [];
    list.push(letter);
    this.#held.set(topic, list);
    this.#heldBytes += sizeOf(letter);
    // Bounded: with the disk failing for long, the oldest held letters go, and each loss is said.
    while (this.#heldBytes > MAX_HELD_BYTES) {
      const [oldestTopic, oldest] = [...this.#held].find(([, l]) => l.length > 0) ?? [];
      if (!oldestTopic || !oldest) break;
      const dropped = oldest.shift()!;
      this.#heldBytes -= sizeOf(dropped);
      if (oldest.length === 0) this.#held.delete(oldestTopic);
      this.#report(
        `[micro-fn serve] dropped dead letter ${dropped.id} of ${oldestTopic}: more than ${MAX_HELD_BYTES} bytes of dead letters could not be written`,
      );
    }
  }

  /** Forgets the first `count` held letters of `topic` (written, or taken by drain). */
  #release(topic: string, count: number): void {
    const list = this.#held.get(topic);
    if (!list) return;
    for (const letter of list.splice(0, count)) this.#heldBytes -= sizeOf(letter);
    if (list.length === 0) this.#held.delete(topic);
  }

  async list(topic: string): Promise<DeadLetter[]> {
    const { written, held } = await this.#read(topic);
    return [...written, ...held];
  }

  async #read(topic: string): Promise<{ written: DeadLetter[]; held: DeadLetter[] }> {
    await this.#writing.get(topic);
    let text = '';
    try {
      text = await readFile(this.#file(topic), 'utf8');
    } catch {
      // none written (or unreadable: the held ones below are still listed)
    }
    const written = text
      .split('\n')
      .filter(Boolean)
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as DeadLetter];
        } catch {
          return [];
        }
      });
    return { written, held: [...(this.#held.get(topic) ?? [])] };
  }

  /** Publishes every dead letter of `topic` again (without its dead-letter headers) and takes it out of the file. */
  async replay(
    topic: string,
    publish: (body: Uint8Array, headers: Record<string, string>) => Promise<void>,
  ): Promise<number> {
    const letters = await this.drain(topic);
    for (const l of letters) await publish(new TextEncoder().encode(l.body), stripDeadLetterHeaders(l.headers));
    return letters.length;
  }

  /** Takes every dead letter of `topic` out of the file (and memory). */
  async drain(topic: string): Promise<DeadLetter[]> {
    const { written, held } = await this.#read(topic);
    await rm(this.#file(topic), { force: true }).catch((err: NodeJS.ErrnoException) => {
      throw errors.internal(
        RUNTIME_SERVICE,
        `cannot take the dead letters of ${topic} out of ${this.#file(topic)}: ${err.code ?? err.message}`,
      );
    });
    this.#release(topic, held.length);
    return [...written, ...held];
  }
}

function stripDeadLetterHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !k.startsWith('micro-dead-letter-')));
}

function sizeOf(letter: DeadLetter): number {
  return letter.body.length + letter.id.length + 256;
}
