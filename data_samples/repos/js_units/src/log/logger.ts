import { ORDER, type Level } from './levels';

export class Logger {
  constructor(private name: string, private threshold: Level = 'info') {}

  write(level: Level, message: string): void {
    if (ORDER.indexOf(level) >= ORDER.indexOf(this.threshold)) {
      console.log(`[${this.name}] ${level}: ${message}`);
    }
  }
}
