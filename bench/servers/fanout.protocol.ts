// What bench:fanout says to the server it measures over IPC, and what that server answers, with the
// loop both of its servers (tickgraph's and the bare ws floor) run to answer it.
export type PublishCommand =
  | { publish: "windows"; ends: string[]; rate: number }
  | { publish: "ticks"; symbols: string[]; rate: number; count: number };
export type ServerCommand = PublishCommand | { measure: "start" | "stop" } | { ask: "subscribers" };
export type ServerReport =
  | { port: number }
  | { published: string; at: number }
  | { done: true }
  | { cpuMs: number; wallMs: number; rssPeakMb: number }
  | { subscribers: number };

/** Epoch ms with sub-millisecond resolution: comparable across the bench's processes. */
export const now = (): number => performance.timeOrigin + performance.now();
export const report = (r: ServerReport): void => void process.send!(r);

export interface Publisher {
  /** Subscribers being delivered to now. */
  subscribers(): number | Promise<number>;
  /** Publishes event `k` of `cmd` at `at`; returns the key clients will see it by, or null if it carries its time. */
  publish(cmd: PublishCommand, k: number, at: number): string | null;
}

/**
 * Answers the bench's commands: publishes events at a steady rate (reporting when each left), counts
 * subscribers, and measures CPU time and peak RSS between `measure: start` and `stop`.
 */
export function answerCommands(p: Publisher): void {
  let cpu = process.cpuUsage();
  let wall = now();
  let rssPeak = 0;
  setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 100).unref();

  process.on("message", (cmd: ServerCommand) => {
    if ("ask" in cmd) {
      void Promise.resolve(p.subscribers()).then((n) => report({ subscribers: n }));
    } else if ("measure" in cmd) {
      if (cmd.measure === "start") {
        cpu = process.cpuUsage();
        wall = now();
        rssPeak = process.memoryUsage.rss();
      } else {
        const used = process.cpuUsage(cpu);
        report({
          cpuMs: (used.user + used.system) / 1000,
          wallMs: now() - wall,
          rssPeakMb: rssPeak / 2 ** 20,
        });
      }
    } else {
      const total = cmd.publish === "windows" ? cmd.ends.length : cmd.count;
      const t0 = now();
      let k = 0;
      const step = () => {
        if (k >= total) return report({ done: true });
        const at = now();
        const key = p.publish(cmd, k, at);
        if (key !== null) report({ published: key, at });
        k++;
        setTimeout(step, Math.max(0, t0 + (k * 1000) / cmd.rate - now()));
      };
      step();
    }
  });
}
