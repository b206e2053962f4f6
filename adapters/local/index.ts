export {
  asDefinition,
  invokeOnce,
  runStandalone,
  serveIpc,
  type InvokeRequest,
  type InvokeResult,
  type RunOptions,
} from './handler.js';
