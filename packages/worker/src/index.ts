export * from './job-config.js';
export * from './cluster-config.js';
export * from './coordinator.js';
export * from './coordinator-client.js';
export * from './chief.js';
export * from './worker.js';
export * from './model-state.js';
export * from './launcher.js';
