export type Level = 'debug' | 'info' | 'warn';
export const ORDER: Level[] = ['debug', 'info', 'warn'];
