/** "Did you mean": the closest of some names to one a user mistyped (commands, flags, endpoints). */

/**
 * The edit distance of `a` and `b`: insertions, deletions, substitutions and swaps of two neighbours each count 1
 * (optimal string alignment), case ignored.
 */
export function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The candidate closest to `word`, if it is close enough to be what was meant: at most a third of the word's length
 * away (at least 1, at most 3), or a candidate the word begins (`dep` for `deploy`). Ties go to the first listed.
 */
export function closest(word: string, names: Iterable<string>): string | undefined {
  const candidates = [...names];
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  if (best !== undefined && bestDistance <= limit) return best;
  if (word.length >= 2) {
    const lower = word.toLowerCase();
    for (const candidate of candidates) if (candidate.toLowerCase().startsWith(lower)) return candidate;
  }
  return undefined;
}

/** `; did you mean "x"?` for the closest candidate, or nothing. */
export function didYouMean(word: string, candidates: Iterable<string>, quote = (s: string) => `"${s}"`): string {
  const match = closest(word, candidates);
  return match === undefined ? '' : `; did you mean ${quote(match)}?`;
}
