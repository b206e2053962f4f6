#!/usr/bin/env node
// The micro-fn command as it was first named: the same as bin.cjs (package.json's bin), which a one-shot
// `micro-fn invoke` starts faster from, without Node's ES module loader.
import './bin.cjs';
