import { readFileSync } from "node:fs";

/** The parts of a V8 `.cpuprofile` (as `node --cpu-prof` writes it) that a summary needs. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  /** Microseconds on the machine's monotonic clock, as `process.hrtime` reads it. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  /** Function name and where it lives (package, node module or project file and line). */
  name: string;
  owner: string;
  us: number;
}

export interface ProfileSummary {
  /** Sampled time spent on something other than waiting (idle excluded), µs. */
  busyUs: number;
  functions: SelfTime[];
  owners: { owner: string; us: number }[];
}

/** Who a frame's code belongs to: a package, a Node.js module, the project, or V8 itself. */
function ownerOf(url: string, name: string): string {
  // No script: V8's own entries, native functions, or code generated at run time (graphql-jit's).
  if (!url) return name.startsWith("(") ? name : "native or generated";
  if (url.startsWith("node:")) return "node:" + url.slice(5).replace(/^internal\//, "");
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  const own = /\/dist\/(src|bench)\//.exec(url);
  if (own) return `tickgraph (${own[1]})`;
  return url;
}

/**
 * Self time by function and by owner, over the samples taken in [fromUs, toUs] (monotonic µs, e.g.
 * `process.hrtime.bigint() / 1000n`), so that start-up and idle time are left out.
 */
export function summariseProfile(path: string, fromUs: number, toUs: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const functions = new Map<string, SelfTime>();
  const owners = new Map<string, number>();
  let busyUs = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const frame = byId.get(profile.samples[i])!;
    if (frame.functionName === "(idle)") continue;
    busyUs += us;
    const owner = ownerOf(frame.url, frame.functionName);
    const where = frame.url.startsWith("node:") || !frame.url ? "" : `:${frame.lineNumber + 1}`;
    const file = frame.url.replace(/^.*\/(node_modules|dist)\//, "");
    const name = `${frame.functionName || "(anonymous)"}${file ? ` ${file}${where}` : ""}`;
    const entry = functions.get(name) ?? { name, owner, us: 0 };
    entry.us += us;
    functions.set(name, entry);
    owners.set(owner, (owners.get(owner) ?? 0) + us);
  }
  return {
    busyUs,
    functions: [...functions.values()].sort((a, b) => b.us - a.us),
    owners: [...owners].map(([owner, us]) => ({ owner, us })).sort((a, b) => b.us - a.us),
  };
}
