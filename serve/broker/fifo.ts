/** A first-in first-out list of message sequence numbers: push and shift in constant time, any length. */
export class Fifo {
  #items: number[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(seq: number): void {
    this.#items.push(seq);
  }

  peek(): number | undefined {
    return this.#items[this.#head];
  }

  shift(): number | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const seq = this.#items[this.#head++]!;
    // Compact once the consumed part is most of the array.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return seq;
  }

  /** Keeps the items `keep` returns true for, in order. */
  retain(keep: (seq: number) => boolean): void {
    this.#items = this.#items.slice(this.#head).filter(keep);
    this.#head = 0;
  }

  /** Adds `seqs` and puts everything in ascending order. */
  merge(seqs: readonly number[]): void {
    this.#items = [...this.#items.slice(this.#head), ...seqs].sort((a, b) => a - b);
    this.#head = 0;
  }

  [Symbol.iterator](): Iterator<number> {
    return this.#items.slice(this.#head)[Symbol.iterator]();
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}
