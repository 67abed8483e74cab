import { readFileSync } from "node:fs";

// Two heap snapshots of one process compared (the CLI is heap-diff.cli.ts).
// 1. What grew from A to B, by constructor (or node type and name for code, closures, arrays…), counted and
//    sized by the objects' own bytes.
// 2. The objects made after A that are still alive in B (V8 keeps an object's id across snapshots of one
//    process), grouped the same way, with what holds most of them (retainer and edge): a leak shows here as
//    a group that keeps growing with the run's length.

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: (string[] | string)[];
      edge_fields: string[];
      edge_types: (string[] | string)[];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Group {
  count: number;
  bytes: number;
}

function load(file: string) {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const meta = s.snapshot.meta;
  const width = meta.node_fields.length;
  const at = (f: string) => meta.node_fields.indexOf(f);
  const [typeAt, nameAt, idAt, sizeAt, edgesAt] = ["type", "name", "id", "self_size", "edge_count"].map(at);
  const types = meta.node_types[0] as string[];
  const n = s.nodes.length / width;
  const key = (i: number): string => {
    const type = types[s.nodes[i * width + typeAt]];
    const name = s.strings[s.nodes[i * width + nameAt]];
    if (type === "object" || type === "native") return name;
    if (type.endsWith("string")) return `(${type})`;
    return `(${type}) ${name.slice(0, 60)}`;
  };
  return {
    s,
    n,
    width,
    key,
    id: (i: number) => s.nodes[i * width + idAt],
    size: (i: number) => s.nodes[i * width + sizeAt],
    edgeCount: (i: number) => s.nodes[i * width + edgesAt],
    name: (i: number) => s.strings[s.nodes[i * width + nameAt]],
    isString: (i: number) => types[s.nodes[i * width + typeAt]] === "string",
  };
}

function groups(h: ReturnType<typeof load>, only?: (i: number) => boolean): Map<string, Group> {
  const out = new Map<string, Group>();
  for (let i = 0; i < h.n; i++) {
    if (only && !only(i)) continue;
    const k = h.key(i);
    const g = out.get(k) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += h.size(i);
    out.set(k, g);
  }
  return out;
}

export interface GrowthRow {
  what: string;
  /** Change in count and in own bytes from A to B. */
  count: number;
  bytes: number;
  /** Own bytes of the group in B. */
  now: number;
}

export interface MadeRow {
  what: string;
  count: number;
  bytes: number;
  /** The commonest holders, "Holder.edge", with how many of the group each holds. */
  heldBy: [string, number][];
}

export interface HeapDiff {
  beforeBytes: number;
  afterBytes: number;
  /** Every group, the most grown first. */
  growth: GrowthRow[];
  /** Objects made after A and alive in B, by group, the largest first. */
  made: MadeRow[];
  /** A few strings made after A. */
  strings: string[];
}

export function diffHeapSnapshots(a: string, b: string): HeapDiff {
  const A = load(a);
  const seen = new Set<number>();
  for (let i = 0; i < A.n; i++) seen.add(A.id(i));
  const before = groups(A);
  const B = load(b);
  const after = groups(B);
  const total = (m: Map<string, Group>) => [...m.values()].reduce((s, e) => s + e.bytes, 0);
  const growth = [...new Set([...before.keys(), ...after.keys()])].map((what) => {
    const x = before.get(what) ?? { count: 0, bytes: 0 };
    const y = after.get(what) ?? { count: 0, bytes: 0 };
    return { what, count: y.count - x.count, bytes: y.bytes - x.bytes, now: y.bytes };
  });
  growth.sort((p, q) => q.bytes - p.bytes);

  // Objects new since A, and who holds them: one pass over B's edges.
  const fresh = new Uint8Array(B.n);
  for (let i = 0; i < B.n; i++) if (!seen.has(B.id(i))) fresh[i] = 1;
  const meta = B.s.snapshot.meta;
  const ew = meta.edge_fields.length;
  const [etAt, enAt, toAt] = ["type", "name_or_index", "to_node"].map((f) => meta.edge_fields.indexOf(f));
  const edgeTypes = meta.edge_types[0] as string[];
  const holders = new Map<string, Map<string, number>>();
  for (let i = 0, e = 0; i < B.n; i++) {
    const from = B.key(i);
    for (let c = B.edgeCount(i); c > 0; c--, e += ew) {
      const to = B.s.edges[e + toAt] / B.width;
      if (!fresh[to]) continue;
      const type = edgeTypes[B.s.edges[e + etAt]];
      if (type === "weak" || type === "shortcut") continue;
      const edge =
        type === "element" || type === "hidden" ? `[${type}]` : String(B.s.strings[B.s.edges[e + enAt]]);
      const k = B.key(to);
      const m = holders.get(k) ?? new Map<string, number>();
      const via = `${from}.${edge.slice(0, 40)}`;
      m.set(via, (m.get(via) ?? 0) + 1);
      holders.set(k, m);
    }
  }
  const made = [...groups(B, (i) => fresh[i] === 1)]
    .map(([what, g]) => ({
      what,
      ...g,
      heldBy: [...(holders.get(what) ?? new Map<string, number>())].sort((p, q) => q[1] - p[1]).slice(0, 3),
    }))
    .sort((p, q) => q.bytes - p.bytes);
  const strings: string[] = [];
  for (let i = 0; i < B.n && strings.length < 15; i++)
    if (fresh[i] && B.isString(i) && i % 7 === 0) strings.push(B.name(i).slice(0, 100));
  return { beforeBytes: total(before), afterBytes: total(after), growth, made, strings };
}
