export { createServe, denoEnv, type ServeOptions } from './handler.js';
export type { DenoNamespace, Env, ServeDefaultExport, ServeHandlerInfo } from './platform.js';
