import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { summariseProfile } from "../../bench/profile";

// A profile as `node --cpu-prof` writes it: samples name nodes, timeDeltas are µs since the previous one.
function profileFile(): string {
  const frame = (id: number, functionName: string, url = "", lineNumber = 0) => ({
    id,
    callFrame: { functionName, url, lineNumber, columnNumber: 0, scriptId: "0" },
  });
  const nodes = [
    frame(1, "(root)"),
    frame(2, "(idle)"),
    frame(3, "(garbage collector)"),
    frame(4, "serialize", "file:///app/dist/src/server/responses.js", 35),
    frame(5, "parseRow", "file:///app/node_modules/pg/lib/result.js", 62),
    frame(6, "writev"),
    frame(7, "emit", "node:events"),
  ];
  // Samples at 1000, 1100, …: the first two fall before the window, the last after it.
  const samples = [4, 4, 4, 5, 3, 2, 6, 7, 4, 4];
  const timeDeltas = [1000, 100, 100, 100, 100, 100, 100, 100, 100, 100];
  const path = join(mkdtempSync(join(tmpdir(), "profile-")), "CPU.test.cpuprofile");
  writeFileSync(path, JSON.stringify({ nodes, startTime: 0, endTime: 2000, samples, timeDeltas }));
  return path;
}

describe("summariseProfile", () => {
  it("counts self time of the samples in the window only, idle left out, by function and by owner", () => {
    const s = summariseProfile(profileFile(), 1200, 1800);
    // In [1200, 1800]: serialize, parseRow, GC, idle, writev, emit, serialize — each worth the 100 µs to the next.
    expect(s.busyUs).toBe(600);
    expect(s.functions.map((f) => [f.name, f.owner, f.us])).toEqual([
      ["serialize src/server/responses.js:36", "tickgraph (src)", 200],
      ["parseRow pg/lib/result.js:63", "pg", 100],
      ["(garbage collector)", "(garbage collector)", 100],
      ["writev", "native or generated", 100],
      ["emit node:events", "node:events", 100],
    ]);
    expect(s.owners[0]).toEqual({ owner: "tickgraph (src)", us: 200 });
  });
});
