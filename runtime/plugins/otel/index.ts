export { otlpExporter } from './plugin.js';
export { createOtlpExporter } from './exporter.js';
