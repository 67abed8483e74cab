import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";

// The peer users would otherwise pick: PostGraphile v5 with its default (Amber) preset over the bench
// database, no authentication, policy or audit. Prints {"port":N} once listening.
// BENCH_EXPLAIN=on adds the SQL it runs to each response's extensions (the bench checks its plans).

// Grafast (PostGraphile 5.1) calls Node 22's Promise.withResolvers when it executes; the project runs on
// Node 20.
const promise = Promise as PromiseConstructor & { withResolvers?: () => unknown };
promise.withResolvers ??= function withResolvers() {
  let resolve!: (value: unknown) => void;
  let reject!: (reason?: unknown) => void;
  const p = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise: p, resolve, reject };
};

// Loaded without its type declarations: they reach @types/react's global DOM stubs (through GraphiQL's),
// which would change the DOM types of every file the project type-checks with this one.
const load = createRequire(__filename);
const { postgraphile } = load("postgraphile") as {
  postgraphile: (preset: object) => {
    createServ(grafserv: unknown): { addTo(server: Server): Promise<void> };
    release(): Promise<void> | void;
  };
};
const { PostGraphileAmberPreset } = load("postgraphile/presets/amber") as { PostGraphileAmberPreset: object };
const { makePgService } = load("postgraphile/adaptors/pg") as { makePgService: (options: object) => object };
const { grafserv } = load("postgraphile/grafserv/node") as { grafserv: unknown };

const pgl = postgraphile({
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      // As many connections as the other bench servers have.
      poolConfig: { max: 20 },
    }),
  ],
  grafast: { explain: process.env.BENCH_EXPLAIN === "on" ? ["sql"] : false },
});

async function main() {
  const server = createServer();
  await pgl.createServ(grafserv).addTo(server);
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + "\n");
  });
  process.on("SIGTERM", () =>
    server.close(() => void Promise.resolve(pgl.release()).then(() => process.exit(0))),
  );
}

main().catch((err) => {
  process.stderr.write(`postgraphile server failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
