// Makes process.stdout and process.stderr blocking as each is first made, so nothing written to them is lost when
// the process exits (process.exit, a crash) while a slow reader has not taken it: on Linux Node writes pipes and
// socket pairs without blocking and holds in the process what the kernel does not take at once, which exit drops
// (499-512 of 5,000 lines reached serve from a function that printed them just before it exited). Lazily: making
// the streams costs a start a few milliseconds, which a process that never writes to them does not pay.
// Plain CommonJS: serve/bootstrap.cjs and cli/bin.cjs load it before anything else.
'use strict';

function blockingStdio() {
  for (const name of /** @type {const} */ (['stdout', 'stderr'])) {
    const own = Object.getOwnPropertyDescriptor(process, name);
    if (!own?.get || !own.configurable) continue;
    /** @type {NodeJS.WriteStream | undefined} */
    let made;
    Object.defineProperty(process, name, {
      configurable: true,
      enumerable: own.enumerable,
      get() {
        if (!made) {
          made = own.get.call(process);
          /** @type {{ _handle?: { setBlocking?: (on: boolean) => unknown } }} */ (made)._handle?.setBlocking?.(true);
        }
        return made;
      },
    });
  }
}

module.exports = { blockingStdio };
