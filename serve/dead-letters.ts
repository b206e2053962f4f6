/** Dead-lettered messages, kept in a file per topic so `micro-fn dlq` can list and replay them after a restart. */
import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrokerMessage } from '../runtime/core/broker.js';

import type { DeadLetter } from '../runtime/plugins/local/protocol.js';

export class DeadLetters {
  readonly #dir: string;

  constructor(home: string) {
    this.#dir = join(home, 'dlq');
  }

  #file(topic: string): string {
    return join(this.#dir, `${encodeURIComponent(topic)}.jsonl`);
  }

  async add(topic: string, message: BrokerMessage): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const letter: DeadLetter = {
      id: message.id,
      topic,
      headers: message.headers,
      body: new TextDecoder().decode(message.body),
      at: new Date().toISOString(),
    };
    await appendFile(this.#file(topic), `${JSON.stringify(letter)}\n`);
  }

  async list(topic: string): Promise<DeadLetter[]> {
    let text: string;
    try {
      text = await readFile(this.#file(topic), 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter(Boolean)
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as DeadLetter];
        } catch {
          return [];
        }
      });
  }

  /** Takes every dead letter of `topic` out of the file. */
  async drain(topic: string): Promise<DeadLetter[]> {
    const letters = await this.list(topic);
    await rm(this.#file(topic), { force: true });
    return letters;
  }
}
