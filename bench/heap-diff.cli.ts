import { diffHeapSnapshots } from "./heap-diff";

// node dist/bench/heap-diff.cli.js A.heapsnapshot B.heapsnapshot [top]: what grew between two heap
// snapshots of one process, and what was made in between and is still alive, with what holds it.
const [a, b, topArg = "25"] = process.argv.slice(2);
if (!a || !b) {
  console.error("usage: node dist/bench/heap-diff.cli.js A.heapsnapshot B.heapsnapshot [top]");
  process.exit(2);
}
const top = Number(topArg);
const kb = (b: number) => (b / 1024).toFixed(0).padStart(7);
const d = diffHeapSnapshots(a, b);
console.log(
  `self size: ${(d.beforeBytes / 2 ** 20).toFixed(1)} MB → ${(d.afterBytes / 2 ** 20).toFixed(1)} MB`,
);
console.log("\nGrowth by group:\n   Δ KB    Δ count   now KB  what");
for (const r of d.growth.slice(0, top))
  console.log(`${kb(r.bytes)}  ${String(r.count).padStart(9)}  ${kb(r.now)}  ${r.what}`);
const madeMb = d.made.reduce((s, g) => s + g.bytes, 0) / 2 ** 20;
console.log(`\nMade after A, alive in B: ${madeMb.toFixed(1)} MB\n     KB      count  what  ← held by`);
for (const g of d.made.slice(0, top))
  console.log(
    `${kb(g.bytes)}  ${String(g.count).padStart(9)}  ${g.what}  ← ${g.heldBy.map(([v, c]) => `${v} ×${c}`).join(", ")}`,
  );
console.log(`\nSome strings made after A:\n  ${d.strings.map((s) => JSON.stringify(s)).join("\n  ")}`);
