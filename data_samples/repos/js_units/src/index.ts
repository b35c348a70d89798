// Public entry point of the units library.
export * from './convert';
export { Logger } from './log/logger';
