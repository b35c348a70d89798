import type { Level } from '../log/levels';
import { Logger } from '../log/logger';

const log = new Logger('temperature');

export function toKelvin(celsius: number, level: Level = 'info'): number {
  if (celsius < -273.15) log.write('warn', `below absolute zero: ${celsius}`);
  else log.write(level, `converted ${celsius}`);
  return celsius + 273.15;
}
