import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { diffHeapSnapshots } from "../../bench/heap-diff";

// A process that keeps 5,000 Kept objects (held by one array) and drops 5,000 Dropped ones between two
// snapshots of its heap.
const SCRIPT = `
const v8 = require("node:v8");
const dir = process.argv[1];
class Kept { constructor(i) { this.i = i; } }
class Dropped { constructor(i) { this.i = i; } }
globalThis.kept = [];
v8.writeHeapSnapshot(dir + "/a.heapsnapshot");
for (let i = 0; i < 5000; i++) globalThis.kept.push(new Kept(i));
let dropped = [];
for (let i = 0; i < 5000; i++) dropped.push(new Dropped(i));
dropped = null;
v8.writeHeapSnapshot(dir + "/b.heapsnapshot");
`;

test("heap-diff finds what was made between two snapshots and is still alive, and what holds it", () => {
  const dir = mkdtempSync(join(tmpdir(), "heap-diff-"));
  execFileSync(process.execPath, ["-e", SCRIPT, dir]);
  expect(readdirSync(dir).sort()).toEqual(["a.heapsnapshot", "b.heapsnapshot"]);
  const d = diffHeapSnapshots(join(dir, "a.heapsnapshot"), join(dir, "b.heapsnapshot"));

  const grown = d.growth.find((r) => r.what === "Kept");
  expect(grown).toMatchObject({ count: 5000 });
  expect(grown!.bytes).toBeGreaterThan(0);
  const made = d.made.find((r) => r.what === "Kept");
  expect(made).toMatchObject({ count: 5000 });
  expect(made!.heldBy[0]).toEqual(["Array.[element]", 5000]);
  // Collected before the second snapshot: neither grown nor alive.
  expect(d.growth.find((r) => r.what === "Dropped")).toBeUndefined();
  expect(d.made.find((r) => r.what === "Dropped")).toBeUndefined();
  expect(d.afterBytes).toBeGreaterThan(d.beforeBytes);
});
