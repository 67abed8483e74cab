import { log } from "../log";

/**
 * What a component started and must stop, in one list: disposed newest first (what was started last
 * depends on what came before), each once, a failure logged without stopping the others.
 */
export class Disposer {
  private readonly steps: { what: string; dispose: () => unknown }[] = [];
  private disposing: Promise<void> | undefined;
  /** The step being disposed now, while `dispose` runs. */
  private current: string | null = null;

  /** What `dispose` waits for now (null when not disposing or done). */
  get waitingFor(): string | null {
    return this.current;
  }

  /** Registers how to stop something just started. */
  add(what: string, dispose: () => unknown): void {
    this.steps.push({ what, dispose });
  }

  /** Stops everything registered, newest first; safe to call more than once. */
  dispose(): Promise<void> {
    this.disposing ??= (async () => {
      for (const step of this.steps.reverse()) {
        this.current = step.what;
        try {
          await step.dispose();
        } catch (err) {
          log.error({ err, what: step.what }, "stopping failed");
        }
      }
      this.current = null;
    })();
    return this.disposing;
  }
}
