// The storefront under HTTP load (make load, bench/load.sh): autocannon 9
// from this script, against the real server (a child process) and a real
// PostgreSQL, as a flash sale: BUYERS distinct shoppers (each its session
// cookie and its own Idempotency-Key) on STOCK units of one product.
//
// Four runs, each on a fresh shop: a closed loop (CONNECTIONS connections,
// each sending its next request when the last is answered) and an open
// loop (a fixed rate: a slow server cannot hide its latency by slowing the
// load), each with the server's pool direct to PostgreSQL and through
// pgbouncer in transaction mode (PGBOUNCER_PORT; the stock listener
// direct).  Per run: requests/s, orders/s, time to sell out, latency
// p50/p90/p99/max per outcome (order, SH001, 503), status counts; then the
// invariants in SQL: orders = STOCK, stock 0, no buyer with two orders,
// shop_check_integrity() clean.  Writes the samples for the chart
// (LOAD_SAMPLES, CSV) and the runs as JSON (LOAD_JSON) for bench/load.sh.
import { writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import autocannon from "autocannon";
import { createShop, one, percentile, startServer, url } from "./harness.js";

const env = process.env;
const BUYERS = Number(env.BUYERS ?? 2000);
const STOCK = Number(env.STOCK ?? 500);
const CONNECTIONS = Number(env.CONNECTIONS ?? 64);
const POOL_SIZE = env.POOL_SIZE ?? "16";

type Sample = { run: string; t: number; ms: number; status: number };
const samples: Sample[] = [];

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

type Run = {
  name: string;
  route: string;
  loop: string;
  connections: number;
  rate: number | null;
  seconds: number;
  requestsPerSecond: number;
  ordersPerSecond: number;
  soldOutSeconds: number;
  statuses: Record<string, number>;
  latency: Record<string, { n: number; p50: number; p90: number; p99: number; max: number }>;
  books: { orders: number; buyers: number; stock: number; problems: number; doubles: number };
  nonSuccess: number;
};

async function run(route: "direct" | "pgbouncer", loop: "closed" | "open", rate: number | null): Promise<Run> {
  const name = `${route}, ${loop} loop`;
  const db = `storefront_load_${route}_${loop}`;
  const pool = createShop(db, STOCK);
  const viaBouncer = route === "pgbouncer";
  if (viaBouncer && !env.PGBOUNCER_PORT) throw new Error("PGBOUNCER_PORT is not set");
  const shop = await startServer(db, {
    DATABASE_URL: url(db, "app", viaBouncer ? env.PGBOUNCER_PORT : undefined),
    LISTEN_DATABASE_URL: url(db, "app"),
    POOL_SIZE,
    POOL_TIMEOUT_MS: "5000",
  });
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
    let next = 0;
    const started = Date.now();
    let soldOutAt = 0;
    const statuses: Record<string, number> = {};
    const build = (i: number) => ({
      headers: {
        "content-type": "application/json",
        cookie: cookies[i],
        "idempotency-key": `load-${route}-${loop}-${i}`,
      },
      body: JSON.stringify({ lines: [{ productId: 1, quantity: 1 }] }),
    });
    const onResponse = (status: number, ms: number) => {
      const t = Date.now() - started;
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 201 && (statuses[201] ?? 0) === STOCK) soldOutAt = t;
      samples.push({ run: name, t, ms, status });
    };
    let result: { duration: number; errors: number; timeouts: number };
    if (loop === "open") {
      result = await openLoop(shop.url, rate!, BUYERS, build, onResponse);
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
      instance.on("response", (_client: unknown, status: number, _bytes: number, ms: number) => onResponse(status, ms));
      result = await new Promise((resolve, reject) => instance.on("done", resolve).on("error", reject));
    }
    const seconds = result.duration;
    const mine = samples.filter((s) => s.run === name);
    const latency: Run["latency"] = {};
    for (const [outcome, status] of [["order", 201], ["SH001", 409], ["503", 503]] as const) {
      const ms = mine.filter((s) => s.status === status).map((s) => s.ms);
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
    return {
      name,
      route,
      loop,
      connections: loop === "open" ? 0 : CONNECTIONS,
      rate,
      seconds,
      requestsPerSecond: mine.length / seconds,
      ordersPerSecond: (statuses[201] ?? 0) / (soldOutAt > 0 ? soldOutAt / 1000 : seconds),
      soldOutSeconds: soldOutAt / 1000,
      statuses,
      latency,
      books,
      nonSuccess: result.errors + result.timeouts,
    };
  } finally {
    await shop.stop();
    await pool.end();
  }
}

function report(runs: Run[]): string {
  const directCheckouts = Number(env.DIRECT_CHECKOUTS);
  const directOrders = Number(env.DIRECT_ORDERS);
  const out: string[] = [];
  const p = (line = "") => out.push(line);
  p(`# The storefront under HTTP load, ${new Date().toISOString().slice(0, 10)}`);
  p();
  p("`make load` (bench/load.sh, examples/storefront/test/load.ts): the real server (Fastify 5, a pg pool of");
  p(`${POOL_SIZE}) and PostgreSQL 15, ${BUYERS} distinct buyers, each with its session cookie and its own`);
  p(`Idempotency-Key, on ${STOCK} units of one product, every run on a fresh shop. The closed loop is autocannon 9`);
  p(`at ${CONNECTIONS} connections; the open loop sends request i at i / rate whatever the answers (autocannon's`);
  p("own rate sends each second's quota in a burst) and counts latency from the intended send time.");
  p("**One machine, 2 cores, shared by the load tool, Node and PostgreSQL** (and the stock listener); durable");
  p("commits (fsync, synchronous_commit on). What one small box does, not a server's capacity.");
  p();
  p("| run | requests/s | orders/s | sold out in | statuses | order p50 / p90 / p99 / max (ms) | SH001 p50 / p90 / p99 / max (ms) | 503 p99 (ms) |");
  p("|---|---|---|---|---|---|---|---|");
  const l = (x?: { p50: number; p90: number; p99: number; max: number }) =>
    x ? `${x.p50} / ${x.p90} / ${x.p99} / ${x.max}` : "none";
  for (const r of runs) {
    const how = r.rate ? `at ${r.rate} req/s` : `${r.connections} connections`;
    const st = Object.entries(r.statuses).map(([k, v]) => `${k}: ${v}`).join(", ");
    p(`| ${r.name}, ${how} | ${r.requestsPerSecond.toFixed(0)} | ${r.ordersPerSecond.toFixed(0)} | ${r.soldOutSeconds.toFixed(2)} s | ${st} | ${l(r.latency.order)} | ${l(r.latency.SH001)} | ${r.latency["503"]?.p99 ?? "none"} |`);
  }
  p();
  p(`Beside it, in the same run, \`shop_checkout()\` called directly by tools/flashsale at ${CONNECTIONS} connections`);
  p(`(libpq, one call per checkout): the same sale at **${directCheckouts} checkouts/s**; a sale where every`);
  p(`buyer gets an order (${STOCK} buyers, ${STOCK} units) at **${directOrders} orders/s** (p99 ${env.DIRECT_P99} ms).`);
  p();
  const closed = runs.filter((r) => r.loop === "closed");
  p(`| goal, closed loop at ${CONNECTIONS} | ${closed.map((r) => r.route).join(" | ")} |`);
  p(`|---|${closed.map(() => "---|").join("")}`);
  p(`| orders/s ÷ shop_checkout() direct (${directOrders}/s), goal ≥ 0.8 | ${closed.map((r) => (r.ordersPerSecond / directOrders).toFixed(2)).join(" | ")} |`);
  p(`| checkouts/s ÷ direct (${directCheckouts}/s) | ${closed.map((r) => (r.requestsPerSecond / directCheckouts).toFixed(2)).join(" | ")} |`);
  p(`| p99 of an order, goal ≤ 250 ms | ${closed.map((r) => `${r.latency.order?.p99} ms`).join(" | ")} |`);
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

const runs: Run[] = [];
for (const route of ["direct", "pgbouncer"] as const) {
  const closed = await run(route, "closed", null);
  runs.push(closed);
  // the open loop at a fixed rate, half what the closed loop sustained:
  // the latency of a server that keeps up, with no queue of its own making
  const rate = Number(env.LOAD_RATE ?? Math.round(closed.requestsPerSecond * 0.5));
  runs.push(await run(route, "open", rate));
}

let failed = 0;
for (const r of runs) {
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
if (env.LOAD_SAMPLES) {
  writeFileSync(env.LOAD_SAMPLES, samples.map((s) => `"${s.run}",${s.t},${s.ms},${s.status}`).join("\n") + "\n");
}
if (env.LOAD_REPORT) writeFileSync(env.LOAD_REPORT, report(runs));
process.exit(failed === 0 ? 0 : 1);
