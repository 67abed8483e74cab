import "reflect-metadata";
import { loadConfig } from "../../src/config/config";
import { startPlatform } from "../../src/platform";

// The GraphQL server as `serve` runs it (without feed and ingest), on the bench database; prints
// {"port":N} once listening. BENCH_POLICY=off turns the policy layer off to measure what it costs.
async function main() {
  const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", INGEST: "off" });
  const platform = await startPlatform(config, { policy: process.env.BENCH_POLICY !== "off" });
  process.stdout.write(JSON.stringify({ port: platform.server.port }) + "\n");
  process.on("SIGTERM", () => void platform.close().then(() => process.exit(0)));
}
void main();
