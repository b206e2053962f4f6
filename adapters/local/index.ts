export { asDefinition, invokeOnce, runStandalone, type InvokeRequest, type InvokeResult, type RunOptions } from './handler.js';
