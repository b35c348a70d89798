import { FACTORS } from './factors';

export function toMetres(value: number, unit: keyof typeof FACTORS): number {
  return value * FACTORS[unit];
}
