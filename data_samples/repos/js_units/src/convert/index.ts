export { toMetres } from './length';
export { toKelvin } from './temperature.js';
