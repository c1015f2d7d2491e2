export * from './meta.js';
export * from './database.js';
export * from './access.js';
export * from './agent-config.js';
export * from './config.js';
export * from './validate.js';
export * from './access-status.js';
