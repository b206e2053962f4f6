/**
 * Every target, by name: `micro-fn build`, `micro-fn deploy` and their help read this table. A target is a folder
 * under adapters/ with a `target.ts` (see adapters/kit/target.ts); adding one is that folder plus one line here.
 * Each declaration is loaded only when asked for, so a command that uses one target loads no other.
 */
import type { Target } from './kit/target.js';

export const targets: Readonly<Record<string, () => Promise<{ target: Target }>>> = {
  local: () => import('./local/target.js'),
  lambda: () => import('./lambda/target.js'),
  cloudflare: () => import('./cloudflare/target.js'),
  deno: () => import('./deno/target.js'),
};

/** The target `--target` names, or a UserError listing the targets. */
export async function loadTarget(name: string): Promise<Target> {
  const load = targets[name];
  if (!load) {
    const { UserError } = await import('../runtime/core/errors.js');
    throw new UserError(`--target ${name} is not available; targets: ${Object.keys(targets).join(', ')}`);
  }
  return (await load()).target;
}

/** Every target's declaration, in the table's order. */
export function allTargets(): Promise<Target[]> {
  return Promise.all(Object.values(targets).map(async (load) => (await load()).target));
}
