/** The parts `micro-fn serve` hosts beside local functions; each is a folder of serve/ with an Extension factory. */
import type { ExtensionFactory } from './extension.js';
import { lambdaExtension } from './lambda/extension.js';

export const extensions: readonly ExtensionFactory[] = [lambdaExtension];
