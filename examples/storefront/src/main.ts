// The storefront server: DATABASE_URL (or the PG* variables) is the shop,
// as a role given shop_grant_app(); LISTEN_DATABASE_URL the stock
// listener's connection when DATABASE_URL goes through a pooler in
// transaction mode (default: DATABASE_URL); NOTIFIER_DATABASE_URL, when
// set, the owner's connection that runs shop_notify_stock_changes() every
// second (src/notifier.ts).  PORT (default 3000), HOST (127.0.0.1),
// POOL_SIZE (10), POOL_TIMEOUT_MS (2000: a request waits that long for a
// connection, then 503), QUERY_TIMEOUT_MS (10000: a statement unanswered
// that long is given up, 503 maybePlaced), BREAKER_RESET_MS (3000),
// LOW_STOCK (10), COOKIE_SECRET (random per start).
//
// It outlives its database: started while the database is down, stopped,
// restarted or failed over, it answers 503 with Retry-After until the
// database is back, and never exits but on SIGINT or SIGTERM.
import { build } from "./app.js";
import { createPool } from "./db.js";
import { startNotifier } from "./notifier.js";
import { StockHub } from "./stock.js";

const env = process.env;
const log = (msg: string, extra?: Record<string, unknown>) =>
  console.error(`storefront: ${msg}${extra ? " " + JSON.stringify(extra) : ""}`);

const pool = createPool(
  {
    connectionString: env.DATABASE_URL,
    max: Number(env.POOL_SIZE ?? 10),
    connectionTimeoutMillis: Number(env.POOL_TIMEOUT_MS ?? 2000),
    query_timeout: Number(env.QUERY_TIMEOUT_MS ?? 10000),
    application_name: "storefront",
  },
  log,
);

const hub = new StockHub(pool, { connectionString: env.LISTEN_DATABASE_URL ?? env.DATABASE_URL }, {
  lowStock: Number(env.LOW_STOCK ?? 10),
  log,
});
const stopNotifier = env.NOTIFIER_DATABASE_URL ? startNotifier(env.NOTIFIER_DATABASE_URL, 1000, log) : null;
const app = build({
  pool,
  hub,
  cookieSecret: env.COOKIE_SECRET,
  breaker: { resetTimeout: Number(env.BREAKER_RESET_MS ?? 3000) },
});

await hub.start();
const host = env.HOST ?? "127.0.0.1";
const address = await app.listen({ host, port: Number(env.PORT ?? 3000) });
console.log(`storefront: ${address}/`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await app.close();
  await hub.stop();
  await stopNotifier?.();
  await pool.end();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
