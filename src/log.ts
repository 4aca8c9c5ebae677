/** Minimal leveled logger: errors and warnings always, info unless quiet, debug lines only with DEBUG=true. */
export class Log {
  constructor(
    /** Whether debug lines print; callers check it before building costly ones. */
    readonly debugEnabled: boolean,
    private readonly quiet = false,
  ) {}

  debug(message: string): void {
    if (this.debugEnabled) console.log(`${new Date().toISOString()} debug ${message}`);
  }

  info(message: string): void {
    if (!this.quiet) console.log(`${new Date().toISOString()} info  ${message}`);
  }

  warn(message: string): void {
    console.warn(`${new Date().toISOString()} warn  ${message}`);
  }

  error(message: string): void {
    console.error(`${new Date().toISOString()} error ${message}`);
  }
}
