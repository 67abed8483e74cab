import "reflect-metadata";
import { loadConfig } from "../../src/config/config";
import { startPlatform } from "../../src/platform";

// The platform as `serve` runs it, on the bench database; prints {"port":N} once listening.
async function main() {
  const platform = await startPlatform(loadConfig({ PORT: "0", HOST: "127.0.0.1" }));
  process.stdout.write(JSON.stringify({ port: platform.server.port }) + "\n");
  process.on("SIGTERM", () => void platform.close().then(() => process.exit(0)));
}
void main();
