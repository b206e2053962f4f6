/** The embedded store (LMDB): named databases that outlive the process, and stores one process holds at a time. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openOwnStore, openStore, type Store } from '../../../serve/store/store.js';

interface Context {
  dir: string;
  open: Store[];
}

const fresh = (ctx: Context) => {
  ctx.dir = mkdtempSync(join(tmpdir(), 'micro-fn-store-'));
  ctx.open = [];
};
const cleanup = async (ctx: Context) => {
  await Promise.allSettled(ctx.open.map((s) => s.close()));
  rmSync(ctx.dir, { recursive: true, force: true });
};

// ---
const opening = suite<Context>('openStore', { dir: '', open: [] });
opening.before.each(fresh);
opening.after.each(cleanup);

opening('keeps what was written durable across a close, with keys in order and bytes as bytes', async (ctx) => {
  const path = join(ctx.dir, 'kv');
  let store = await openStore(path);
  const db = store.database<{ body: Uint8Array }, [string, number]>('things');
  await store.durable(db.put(['b', 2], { body: new Uint8Array([1, 2, 3]) }));
  await store.durable(db.put(['a', 10], { body: new Uint8Array([4]) }));
  await store.durable(db.put(['a', 9], { body: new Uint8Array([5]) }));
  await store.close();
  store = await openStore(path);
  ctx.open.push(store);
  const again = store.database<{ body: Uint8Array }, [string, number]>('things');
  assert.equal(
    [...again.getKeys()],
    [
      ['a', 9],
      ['a', 10],
      ['b', 2],
    ],
  );
  assert.equal([...again.get(['b', 2])!.body], [1, 2, 3]);
});

// ---
const owning = suite<Context>('openOwnStore', { dir: '', open: [] });
owning.before.each(fresh);
owning.after.each(cleanup);

owning('gives a second holder the next store, and the first one back once it is closed', async (ctx) => {
  const first = await openOwnStore(ctx.dir, 'broker');
  const second = await openOwnStore(ctx.dir, 'broker');
  ctx.open.push(second);
  assert.equal([first.path, second.path], [join(ctx.dir, 'broker'), join(ctx.dir, 'broker-2')]);
  await first.close();
  assert.not.ok(existsSync(join(ctx.dir, 'broker', 'owner')), 'given up on close');
  const third = await openOwnStore(ctx.dir, 'broker');
  ctx.open.push(third);
  assert.is(third.path, join(ctx.dir, 'broker'));
});

owning('takes over a store whose holder died (SIGKILL leaves its owner file behind)', async (ctx) => {
  // A real process that ends: its pid names no live process of that start time any more.
  const child = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  const dead = Number(child.stdout.trim());
  const held = join(ctx.dir, 'broker');
  await openStore(held).then((s) => s.close());
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  writeFileSync(join(held, 'owner'), `${boot}:${dead}:1`);
  const store = await openOwnStore(ctx.dir, 'broker');
  ctx.open.push(store);
  assert.is(store.path, held);
  assert.match(readFileSync(join(held, 'owner'), 'utf8'), new RegExp(`:${process.pid}:`));
});

owning('leaves a store whose holder is alive, even one in another process', async (ctx) => {
  const held = join(ctx.dir, 'broker');
  await openStore(held).then((s) => s.close());
  // This process's own identity, written as another opener would have: alive.
  const stat = readFileSync(`/proc/${process.ppid}/stat`, 'utf8');
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  writeFileSync(join(held, 'owner'), `${boot}:${process.ppid}:${start}`);
  const store = await openOwnStore(ctx.dir, 'broker');
  ctx.open.push(store);
  assert.is(store.path, join(ctx.dir, 'broker-2'));
});

opening.run();
owning.run();
