// The storefront under HTTP load (make load, bench/load.sh): autocannon 9
// from this script, against the real server (a child process) and a real
// PostgreSQL, as a flash sale: BUYERS distinct shoppers (each its session
// cookie and its own Idempotency-Key) on STOCK units of one product.
//
// Two servers side by side in the same run: "new", this storefront (one
// statement per checkout, shop_place_order), and "old", the build in
// OLD_STOREFRONT (the storefront before it: BEGIN, set the cart,
// shop_checkout, read the order back, COMMIT).  For each, four runs, each
// on a fresh shop: a closed loop (CONNECTIONS connections, each sending its
// next request when the last is answered) and an open loop (a fixed rate:
// a slow server cannot hide its latency by slowing the load), each with the
// server's pool direct to PostgreSQL and through pgbouncer in transaction
// mode (PGBOUNCER_PORT; the stock listener direct).  Per run: requests/s,
// orders/s, time to sell out, latency p50/p90/p99/max per outcome (order,
// SH001, 503), status counts; the invariants in SQL (orders = STOCK, stock
// 0, no buyer with two orders, shop_check_integrity() clean).
//
// Where the time goes, per closed-loop run: the CPU each process spent per
// checkout (the server, this load tool, PostgreSQL's backends, pgbouncer;
// /proc, clock ticks) and how busy the machine was; what the pool's
// backends were doing (pg_stat_activity sampled every 20 ms: running,
// waiting on a lock, on WAL, or idle waiting for the server); and one more
// closed-loop run of the new server under node --cpu-prof, its samples
// summed by package and function.
//
// Writes the samples for the chart (LOAD_SAMPLES, CSV) and the report
// (LOAD_REPORT) for bench/load.sh.
import { readFileSync, readdirSync, writeFileSync, mkdtempSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import type pg from "pg";
import { createShop, one, ownerPool, percentile, startServer, url, type Shop } from "./harness.js";

const env = process.env;
const BUYERS = Number(env.BUYERS ?? 2000);
const STOCK = Number(env.STOCK ?? 500);
const CONNECTIONS = Number(env.CONNECTIONS ?? 64);
const POOL_SIZE = env.POOL_SIZE ?? "16";
const OLD_ENTRY = env.OLD_STOREFRONT ?? "";

type Path = "new" | "old";
type Route = "direct" | "pgbouncer";
type Loop = "closed" | "open";
type Sample = { run: string; t: number; ms: number; status: number };
const samples: Sample[] = [];

// ------------------------------------------------------------------ CPU

/** utime + stime (+ cutime + cstime: its waited-for children) of a process, in clock ticks */
function ticks(pid: number | string, children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
    return Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
  } catch {
    return 0; // gone
  }
}

const ppid = (pid: string): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
};

/** Every PostgreSQL process of the cluster: the postmaster with its exited children, and the live ones */
function postgresTicks(postmaster: number): number {
  let sum = ticks(postmaster, true);
  for (const pid of readdirSync("/proc")) {
    if (/^\d+$/.test(pid) && ppid(pid) === postmaster) sum += ticks(pid);
  }
  return sum;
}

/** The machine: busy and all clock ticks of every core (/proc/stat) */
function machine(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

type Cpu = { server: number; loadTool: number; postgres: number; pgbouncer: number; busy: number; total: number };

function cpuNow(server: number, postmaster: number): Cpu {
  const m = machine();
  return {
    server: ticks(server),
    loadTool: ticks(process.pid),
    postgres: postgresTicks(postmaster),
    pgbouncer: env.PGBOUNCER_PID ? ticks(env.PGBOUNCER_PID) : 0,
    busy: m.busy,
    total: m.total,
  };
}

const cpuDelta = (a: Cpu, b: Cpu): Cpu => ({
  server: b.server - a.server,
  loadTool: b.loadTool - a.loadTool,
  postgres: b.postgres - a.postgres,
  pgbouncer: b.pgbouncer - a.pgbouncer,
  busy: b.busy - a.busy,
  total: b.total - a.total,
});

// ---------------------------------------------------------------- waits

/** What the app role's backends of `db` do, sampled every 20 ms: mean backends per state */
function sampleWaits(pool: pg.Pool, db: string) {
  const counts = new Map<string, number>();
  let n = 0;
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const { rows } = await pool.query(
        `SELECT CASE WHEN state = 'active' AND wait_event IS NULL THEN 'running'
                     WHEN state = 'active' THEN wait_event_type || ': ' || wait_event
                     WHEN state = 'idle' THEN 'idle: waiting for the server'
                     WHEN state = 'idle in transaction' THEN 'idle in transaction: waiting for the server'
                     ELSE state END AS what, count(*)::int AS n
           FROM pg_stat_activity
          WHERE datname = $1 AND usename = 'storefront' AND backend_type = 'client backend'
            AND application_name <> 'storefront stock listener'
          GROUP BY 1`,
        [db],
      );
      n++;
      for (const r of rows) counts.set(r.what, (counts.get(r.what) ?? 0) + r.n);
    } catch {
      // a sample lost: the mean is over the others
    } finally {
      busy = false;
    }
  }, 20);
  return () => {
    clearInterval(timer);
    return Object.fromEntries([...counts].map(([k, v]) => [k, v / Math.max(1, n)]).sort((a, b) => Number(b[1]) - Number(a[1])));
  };
}

// ------------------------------------------------------------- the load

async function sessions(base: string, n: number): Promise<string[]> {
  const cookies: string[] = [];
  const one = async () => {
    const res = await fetch(`${base}/api/session`, { method: "POST" });
    cookies.push(res.headers.get("set-cookie")!.split(";")[0]);
  };
  for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, one));
  return cookies;
}

/**
 * The open loop: request i is sent at start + i / rate whatever the
 * answers so far (autocannon's overallRate sends each second's quota in a
 * burst at the second's start, lib/httpClient.js reqsMadeThisSecond, which
 * is no fixed rate); latency counts from the intended send time, so a
 * server that falls behind shows it (no coordinated omission).
 */
async function openLoop(
  base: string, rate: number, n: number, build: (i: number) => { headers: Record<string, string>; body: string },
  onResponse: (status: number, ms: number) => void,
): Promise<{ duration: number; errors: number; timeouts: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1024 });
  const target = new URL(`${base}/api/checkout`);
  const start = performance.now();
  let errors = 0;
  const sends: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const at = start + (i * 1000) / rate;
    const wait = at - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const { headers, body } = build(i);
    sends.push(
      new Promise<void>((resolve) => {
        const req = request(
          target,
          { method: "POST", agent, headers: { ...headers, "content-length": Buffer.byteLength(body) } },
          (res) => {
            res.resume();
            res.on("end", () => {
              onResponse(res.statusCode ?? 0, performance.now() - at);
              resolve();
            });
          },
        );
        req.on("error", () => {
          errors++;
          resolve();
        });
        req.end(body);
      }),
    );
  }
  await Promise.all(sends);
  agent.destroy();
  return { duration: (performance.now() - start) / 1000, errors, timeouts: 0 };
}

type Latency = { n: number; p50: number; p90: number; p99: number; max: number };

type Run = {
  name: string;
  path: Path;
  route: Route;
  loop: Loop;
  connections: number;
  rate: number | null;
  seconds: number;
  requestsPerSecond: number;
  ordersPerSecond: number;
  soldOutSeconds: number;
  statuses: Record<string, number>;
  latency: Record<string, Latency>;
  books: { orders: number; buyers: number; stock: number; problems: number; doubles: number };
  nonSuccess: number;
  cpu?: Cpu;
  waits?: Record<string, number>;
  /** orders slower than 250 ms, and how many of them were their connection's first request */
  slow: { orders: number; firstOfConnection: number };
  /** the run's window in µs of the monotonic clock (V8's profiles count in it too) */
  window: { from: bigint; to: bigint };
};

async function run(path: Path, route: Route, loop: Loop, rate: number | null, profileDir?: string): Promise<Run> {
  const name = `${path}, ${route}, ${loop} loop${profileDir ? ", --cpu-prof" : ""}`;
  const db = `storefront_load_${path}_${route}_${loop}${profileDir ? "_prof" : ""}`;
  const pool = createShop(db, STOCK);
  const viaBouncer = route === "pgbouncer";
  if (viaBouncer && !env.PGBOUNCER_PORT) throw new Error("PGBOUNCER_PORT is not set");
  const shop: Shop = await startServer(
    db,
    {
      DATABASE_URL: url(db, "app", viaBouncer ? env.PGBOUNCER_PORT : undefined),
      LISTEN_DATABASE_URL: url(db, "app"),
      POOL_SIZE,
      POOL_TIMEOUT_MS: "5000",
    },
    {
      ...(path === "old" ? { entry: OLD_ENTRY } : {}),
      nodeArgs: profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [],
    },
  );
  try {
    const cookies = await sessions(shop.url, BUYERS);
    // steady state: every pool connection has checked out once (catalog
    // caches loaded) on a product of its own
    await Promise.all(
      Array.from({ length: Number(POOL_SIZE) }, (_, i) =>
        fetch(`${shop.url}/api/checkout`, {
          method: "POST",
          headers: { cookie: cookies[i], "content-type": "application/json", "idempotency-key": `warm-${i}` },
          body: JSON.stringify({ lines: [{ productId: 3, quantity: 1 }] }),
        }),
      ),
    );
    const postmaster = ppid(String((await one(pool, "SELECT pg_backend_pid() AS pid")).pid));
    let next = 0;
    let t0 = 0; // the first send (performance.now())
    let soldOutAt = 0;
    const statuses: Record<string, number> = {};
    const build = (i: number) => ({
      headers: {
        "content-type": "application/json",
        cookie: cookies[i],
        "idempotency-key": `load-${path}-${route}-${loop}-${i}`,
      },
      body: JSON.stringify({ lines: [{ productId: 1, quantity: 1 }] }),
    });
    const onResponse = (status: number, ms: number) => {
      const t = performance.now() - t0;
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 201 && (statuses[201] ?? 0) === STOCK) soldOutAt = t;
      if (!profileDir) samples.push({ run: name, t, ms, status });
    };
    // the run's window: from the first send to the last answer (autocannon's
    // own duration ends at its next whole-second tick, not at the last answer)
    const waits = loop === "closed" ? sampleWaits(pool, db) : null;
    const before = cpuNow(shop.process.pid!, postmaster);
    t0 = performance.now();
    const window = { from: process.hrtime.bigint() / 1000n, to: 0n };
    let cpu: Cpu | undefined;
    let meanWaits: Record<string, number> | undefined;
    let seconds = 0;
    let result: { duration: number; errors: number; timeouts: number };
    const latencies: { status: number; ms: number; first: boolean }[] = [];
    const record = (status: number, ms: number, first = false) => {
      latencies.push({ status, ms, first });
      onResponse(status, ms);
      if (latencies.length === BUYERS) {
        seconds = (performance.now() - t0) / 1000;
        window.to = process.hrtime.bigint() / 1000n;
        cpu = cpuDelta(before, cpuNow(shop.process.pid!, postmaster));
        meanWaits = waits?.();
      }
    };
    if (loop === "open") {
      result = await openLoop(shop.url, rate!, BUYERS, build, record);
    } else {
      const instance: any = (autocannon as any)({
        url: shop.url,
        connections: CONNECTIONS,
        amount: BUYERS,
        timeout: 30,
        requests: [
          {
            method: "POST",
            path: "/api/checkout",
            setupRequest: (req: any) => ({ ...req, ...build(next++ % BUYERS) }),
          },
        ],
      });
      // a connection's first request: its clock starts before the connection
      // is open (autocannon writes it into the connecting socket)
      const seen = new Set<unknown>();
      instance.on("response", (client: unknown, status: number, _bytes: number, ms: number) => {
        const first = !seen.has(client);
        seen.add(client);
        record(status, ms, first);
      });
      result = await new Promise((resolve, reject) => instance.on("done", resolve).on("error", reject));
    }
    if (seconds === 0) {
      // not every request answered (socket errors): the window ends now
      seconds = (performance.now() - t0) / 1000;
      window.to = process.hrtime.bigint() / 1000n;
      cpu = cpuDelta(before, cpuNow(shop.process.pid!, postmaster));
      meanWaits = waits?.();
    }
    const latency: Run["latency"] = {};
    const kinds = [["order", 201, false], ["SH001", 409, false], ["503", 503, false], ["orderNotFirst", 201, true]] as const;
    for (const [outcome, status, notFirst] of kinds) {
      const ms = latencies.filter((s) => s.status === status && !(notFirst && s.first)).map((s) => s.ms);
      if (ms.length === 0) continue;
      latency[outcome] = {
        n: ms.length,
        p50: Math.round(percentile(ms, 50)),
        p90: Math.round(percentile(ms, 90)),
        p99: Math.round(percentile(ms, 99)),
        max: Math.round(Math.max(...ms)),
      };
    }
    const books = await one(
      pool,
      `SELECT count(*) FILTER (WHERE i.product_id = 1)::int AS orders,
              count(DISTINCT o.customer_id) FILTER (WHERE i.product_id = 1)::int AS buyers,
              (SELECT stock FROM product_stock WHERE product_id = 1) AS stock,
              (SELECT count(*) FROM shop_check_integrity())::int AS problems,
              (SELECT count(*) FROM (SELECT customer_id FROM orders AS o2 JOIN order_items AS i2 ON i2.order_id = o2.id
                                      WHERE i2.product_id = 1 GROUP BY customer_id HAVING count(*) > 1) AS d)::int AS doubles
         FROM orders AS o JOIN order_items AS i ON i.order_id = o.id`,
    );
    const slowOrders = latencies.filter((s) => s.status === 201 && s.ms > 250);
    return {
      name,
      path,
      slow: { orders: slowOrders.length, firstOfConnection: slowOrders.filter((s) => s.first).length },
      route,
      loop,
      connections: loop === "open" ? 0 : CONNECTIONS,
      rate,
      seconds,
      requestsPerSecond: latencies.length / seconds,
      ordersPerSecond: (statuses[201] ?? 0) / (soldOutAt > 0 ? soldOutAt / 1000 : seconds),
      soldOutSeconds: soldOutAt / 1000,
      statuses,
      latency,
      books,
      nonSuccess: result.errors + result.timeouts,
      cpu: loop === "closed" ? cpu : undefined,
      waits: meanWaits,
      window,
    };
  } finally {
    await shop.stop();
    await pool.end();
  }
}

// -------------------------------------------------------------- profile

/** A --cpu-prof profile summed by package (or Node's own module) and by function: text for the report */
function summarizeProfile(dir: string, requests: number, window: { from: bigint; to: bigint }): string {
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  if (file === undefined) return "(no profile written)";
  const prof = JSON.parse(readFileSync(join(dir, file), "utf8")) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    startTime: number;
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n.callFrame]));
  const where = (url: string, fn: string): string => {
    if (url === "") return fn.startsWith("(") ? fn : "native";
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (m) return m[1];
    if (url.includes("/dist/src/")) return "storefront (src)";
    if (url.startsWith("node:")) {
      const mod = url.slice(5).replace(/^internal\//, "").split("/")[0].replace(/^_/, "");
      return `node:${mod}`;
    }
    return url;
  };
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  let idle = 0;
  // only the samples of the run's window: not the start, the sessions, the warm-up
  let at = prof.startTime;
  prof.samples.forEach((id, i) => {
    const us = prof.timeDeltas[i] ?? 0;
    at += us;
    if (at < Number(window.from) || at > Number(window.to)) return;
    const cf = byId.get(id)!;
    total += us;
    if (cf.functionName === "(idle)") {
      idle += us;
      return;
    }
    const place = where(cf.url, cf.functionName);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
    const fn = `${cf.functionName || "(anonymous)"} (${place}${cf.url && !cf.url.startsWith("node:") ? `:${cf.lineNumber + 1}` : ""})`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  });
  const busy = total - idle;
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1)} %`;
  const perReq = (us: number) => `${(us / requests).toFixed(0)} µs`;
  const out: string[] = [];
  out.push(
    `The server's main thread over the run's window: ${(total / 1e6).toFixed(2)} s, of which busy ${(busy / 1e6).toFixed(2)} s ` +
      `(${((100 * busy) / total).toFixed(0)} %), **${perReq(busy)} of JavaScript thread per request** (${requests} requests).`,
  );
  out.push("");
  out.push("| where (self time) | share of busy | per request |");
  out.push("|---|---|---|");
  for (const [k, v] of [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, 14)) out.push(`| ${k} | ${pct(v)} | ${perReq(v)} |`);
  out.push("");
  out.push("| function (self time) | share of busy |");
  out.push("|---|---|");
  for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 12)) out.push(`| \`${k.replace(/\|/g, "\\|")}\` | ${pct(v)} |`);
  return out.join("\n");
}

// --------------------------------------------------------------- report

function report(runs: Run[], profile: string, facts: Record<string, string>): string {
  const directCheckouts = Number(env.DIRECT_CHECKOUTS);
  const directOrders = Number(env.DIRECT_ORDERS);
  const out: string[] = [];
  const p = (line = "") => out.push(line);
  const l = (x?: Latency) => (x ? `${x.p50} / ${x.p90} / ${x.p99} / ${x.max}` : "none");
  p(`# The storefront under HTTP load, ${new Date().toISOString().slice(0, 10)}: one statement per checkout beside five`);
  p();
  p("`make load` (bench/load.sh, examples/storefront/test/load.ts): the real server (Fastify 5, a pg pool of");
  p(`${POOL_SIZE}) and PostgreSQL ${facts.server}, ${BUYERS} distinct buyers, each with its session cookie and its own`);
  p(`Idempotency-Key, on ${STOCK} units of one product, every run on a fresh shop. Two servers in the same run:`);
  p("**new**, the storefront of now (one statement per checkout: `SELECT * FROM shop_place_order($1, $2, $3, $4)`");
  p("in autocommit), and **old**, the storefront of 2026-12-06 (`BEGIN`, set the cart, `shop_checkout`, read the");
  p(`order back, \`COMMIT\`: five round trips; built from git ${facts.oldRev}). The closed loop is autocannon 9 at`);
  p(`${CONNECTIONS} connections; the open loop sends request i at i / rate whatever the answers, the same rate for`);
  p("both servers (half what the old one sustained closed), and counts latency from the intended send time.");
  p(`**One machine: ${facts.cpu}, ${facts.cores} cores, shared by the load tool, Node and PostgreSQL** (and the`);
  p(`stock listener and notifier). Node ${process.version}. The cluster is make load's pg_virtualenv: fsync=${facts.fsync},`);
  p(`synchronous_commit=${facts.synchronousCommit}${facts.fsync === "off" ? " (commits are written to the OS, not flushed to the disk)" : ""}. The load average before`);
  p(`the runs (1, 5, 15 min): ${facts.loadBefore}. What one small box does, not a server's capacity.`);
  p();
  p("| run | requests/s | orders/s | sold out in | statuses | order p50 / p90 / p99 / max (ms) | SH001 p50 / p90 / p99 / max (ms) | 503 p99 (ms) |");
  p("|---|---|---|---|---|---|---|---|");
  for (const r of runs) {
    const how = r.rate ? `at ${r.rate} req/s` : `${r.connections} connections`;
    const st = Object.entries(r.statuses).map(([k, v]) => `${k}: ${v}`).join(", ");
    p(`| ${r.name}, ${how} | ${r.requestsPerSecond.toFixed(0)} | ${r.ordersPerSecond.toFixed(0)} | ${r.soldOutSeconds.toFixed(2)} s | ${st} | ${l(r.latency.order)} | ${l(r.latency.SH001)} | ${r.latency["503"]?.p99 ?? "none"} |`);
  }
  p();
  p(`Beside them, in the same run, \`shop_checkout()\` called directly by tools/flashsale at ${CONNECTIONS} connections`);
  p(`(libpq, one call per checkout, with keys): the same sale at **${directCheckouts} checkouts/s**; a sale where every`);
  p(`buyer gets an order (${STOCK} buyers, ${STOCK} units) at **${directOrders} orders/s** (p99 ${env.DIRECT_P99} ms).`);
  p();
  const closed = runs.filter((r) => r.loop === "closed");
  p(`| goal, closed loop at ${CONNECTIONS} | ${closed.map((r) => `${r.path}, ${r.route}`).join(" | ")} |`);
  p(`|---|${closed.map(() => "---|").join("")}`);
  p(`| orders/s ÷ shop_checkout() direct (${directOrders}/s), goal ≥ 0.8 | ${closed.map((r) => (r.ordersPerSecond / directOrders).toFixed(2)).join(" | ")} |`);
  p(`| checkouts/s ÷ direct (${directCheckouts}/s) | ${closed.map((r) => (r.requestsPerSecond / directCheckouts).toFixed(2)).join(" | ")} |`);
  p(`| p99 of an order, goal ≤ 250 ms | ${closed.map((r) => `${r.latency.order?.p99} ms`).join(" | ")} |`);
  p(`| p99 of an order, each connection's first request left out | ${closed.map((r) => `${r.latency.orderNotFirst?.p99} ms`).join(" | ")} |`);
  p(`| orders over 250 ms (of them, a connection's first request) | ${closed.map((r) => `${r.slow.orders} (${r.slow.firstOfConnection})`).join(" | ")} |`);
  p();
  p("autocannon writes each connection's first request into a socket still connecting, and its clock runs from");
  p("that write: the first request of each of the 64 connections also waits for its TCP connection, opened as");
  p("the sale starts while the server and PostgreSQL already take the 2 cores the load tool shares.");
  p();
  p("## Where an HTTP checkout's time goes");
  p();
  p(`CPU per request (every answer, orders and SH001 alike) by process over each closed-loop run, from /proc in`);
  p(`clock ticks (${facts.tick} ms): the server (Node, one thread plus libuv), this load tool (autocannon, in process),`);
  p("PostgreSQL (every backend, the stock listener's, the checkpointer and WAL writer) and pgbouncer; and how busy");
  p(`the ${facts.cores} cores were.`);
  p();
  p("| run | server | load tool | PostgreSQL | pgbouncer | all cores busy |");
  p("|---|---|---|---|---|---|");
  const ms = (t: number, n: number) => `${((t * Number(facts.tick)) / n).toFixed(3)} ms`;
  for (const r of closed) {
    if (!r.cpu) continue;
    const n = Object.values(r.statuses).reduce((a, b) => a + b, 0);
    p(`| ${r.name} | ${ms(r.cpu.server, n)} | ${ms(r.cpu.loadTool, n)} | ${ms(r.cpu.postgres, n)} | ${r.route === "pgbouncer" ? ms(r.cpu.pgbouncer, n) : "–"} | ${((100 * r.cpu.busy) / Math.max(1, r.cpu.total)).toFixed(0)} % |`);
  }
  p();
  p(`What the server's ${POOL_SIZE} pool connections were doing (pg_stat_activity every 20 ms, mean connections in`);
  p("each state; `idle` is a connection waiting for the server to send its next statement):");
  p();
  for (const r of closed) {
    if (!r.waits) continue;
    p(`- ${r.name}: ${Object.entries(r.waits).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}`);
  }
  p();
  p("The new server's own time, one more closed-loop run (direct, its own fresh shop) under `node --cpu-prof`");
  p("(the profiler slows it: its throughput is not in the tables above):");
  p();
  p(profile);
  p();
  p("Invariants, checked in SQL after every run (orders = the stock, stock 0, no buyer with two orders,");
  p("`shop_check_integrity()` clean, no socket error):");
  p();
  for (const r of runs) {
    p(`- ${r.name}: orders ${r.books.orders}, stock ${r.books.stock}, buyers with two orders ${r.books.doubles}, ` +
      `integrity problems ${r.books.problems}, socket errors ${r.nonSuccess}`);
  }
  p();
  if (env.LOAD_CHART) p(`![latency of each request over its run](${env.LOAD_CHART})`);
  return out.join("\n") + "\n";
}

// ------------------------------------------------------------------ main

const loadBefore = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(", ");
const paths: Path[] = OLD_ENTRY ? ["old", "new"] : ["new"];
const runs: Run[] = [];
for (const route of ["direct", "pgbouncer"] as const) {
  const closed: Run[] = [];
  for (const path of paths) {
    closed.push(await run(path, route, "closed", null));
    runs.push(closed[closed.length - 1]);
  }
  // the open loop at a fixed rate, half what the old server sustained closed
  // (the new alone when there is no old): the latency of a server that
  // keeps up, with no queue of its own making, the same rate for both
  const rate = Number(env.LOAD_RATE ?? Math.round(closed[0].requestsPerSecond * 0.5));
  for (const path of paths) runs.push(await run(path, route, "open", rate));
}

const profileDir = mkdtempSync(join(tmpdir(), "storefront-prof-"));
const profiled = await run("new", "direct", "closed", null, profileDir);
const profile = summarizeProfile(profileDir, Object.values(profiled.statuses).reduce((a, b) => a + b, 0), profiled.window);

let failed = 0;
for (const r of [...runs, profiled]) {
  const lat = Object.entries(r.latency)
    .map(([k, v]) => `${k} (${v.n}) p50 ${v.p50} p90 ${v.p90} p99 ${v.p99} max ${v.max} ms`)
    .join("; ");
  console.log(
    `${r.name}${r.rate ? ` at ${r.rate} req/s` : ` at ${r.connections} connections`}: ` +
      `${r.requestsPerSecond.toFixed(0)} requests/s, ${r.ordersPerSecond.toFixed(0)} orders/s, ` +
      `sold out in ${r.soldOutSeconds.toFixed(2)} s; statuses ${JSON.stringify(r.statuses)}; ${lat}`,
  );
  const ok =
    r.books.orders === STOCK && r.books.buyers === STOCK && r.books.stock === 0 &&
    r.books.problems === 0 && r.books.doubles === 0 && r.nonSuccess === 0 &&
    (r.statuses[201] ?? 0) === STOCK && (r.statuses[201] ?? 0) + (r.statuses[409] ?? 0) + (r.statuses[503] ?? 0) === BUYERS;
  if (!ok) failed++;
  console.log(`load: ${ok ? "ok" : "FAILED"} ${r.name}: orders ${r.books.orders} = ${STOCK}, stock ${r.books.stock}, ` +
    `buyers with two orders ${r.books.doubles}, integrity problems ${r.books.problems}, socket errors ${r.nonSuccess}`);
}
console.log(profile);

const facts = await (async () => {
  const pool = ownerPool("postgres");
  try {
    const s = await one(pool, "SELECT current_setting('server_version') AS server, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc");
    const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
    return {
      server: s.server,
      fsync: s.fsync,
      synchronousCommit: s.sc,
      cpu: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown CPU",
      cores: String((cpuinfo.match(/^processor\s*:/gm) ?? []).length),
      tick: String(1000 / Number(env.CLK_TCK ?? 100)),
      oldRev: env.OLD_STOREFRONT_REV ?? "(none)",
      loadBefore,
    };
  } finally {
    await pool.end();
  }
})();

if (env.LOAD_SAMPLES) {
  writeFileSync(env.LOAD_SAMPLES, samples.map((s) => `"${s.run}",${s.t},${s.ms},${s.status}`).join("\n") + "\n");
}
if (env.LOAD_REPORT) writeFileSync(env.LOAD_REPORT, report(runs, profile, facts));
process.exit(failed === 0 ? 0 : 1);
