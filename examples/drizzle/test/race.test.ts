// The seed's flash sale through the Drizzle route: 20 in stock, 33 buyers at
// once -> 20 orders, 13 told "Insufficient stock" (409, the short line as
// data), stock 0; then every answer of docs/reference.md's "SQLSTATEs over
// HTTP" this route can give.  The shop connects as a role that has only
// shop_grant_app(); its products table has a column of the shop's own
// (sku).  Runs against the server of the PG* variables (make test: a
// throwaway cluster), as its superuser for setup.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { eq, sql } from "drizzle-orm";
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import { productStock, products } from "../src/schema.js";
import { checkout, checkoutBreaker, checkoutServer, guardedCheckout } from "../src/checkout.js";

const database = "checkout_drizzle";
const appRole = "regress_drizzle_app";
const appPassword = randomUUID();
let admin: pg.Client;
let pool: pg.Pool;
let db: NodePgDatabase;
let server: ReturnType<typeof checkoutServer>;
let baseUrl: string;
let productId: number;
const customerIds: number[] = [];

before(async () => {
  const root = new pg.Client({ database: "postgres" });
  await root.connect();
  await root.query(`DROP DATABASE IF EXISTS ${database}`);
  await root.query(`CREATE DATABASE ${database}`);
  await root.query(`DROP ROLE IF EXISTS ${appRole}`);
  await root.query(`CREATE ROLE ${appRole} LOGIN PASSWORD '${appPassword}'`);
  await root.end();

  // The shop's migration, as the extension's owner: install, add the shop's
  // own column, grant the storefront its role, load the sale
  admin = await adminClient();
  await admin.query("CREATE EXTENSION checkout");
  await admin.query("ALTER TABLE products ADD COLUMN sku text UNIQUE");
  await admin.query(`SELECT shop_grant_app('${appRole}')`);
  const p = await admin.query(
    "INSERT INTO products (name, price_cents, stock, sku) VALUES ('Flash Sale Smartphone', 49900, 20, 'FSS-1') RETURNING id",
  );
  productId = Number(p.rows[0].id);
  const c = await admin.query(
    "INSERT INTO customers (name) SELECT 'buyer ' || g FROM generate_series(1, 33) AS g RETURNING id",
  );
  for (const row of c.rows) customerIds.push(Number(row.id));

  // The storefront, as its role
  pool = new pg.Pool({ database, user: appRole, password: appPassword, max: 10 });
  // a connection the server drops while idle (the breaker test stops it) ...
  pool.on("error", () => {});
  // ... or while a query holds it: every client listens for 'error' from the start
  pool.on("connect", (client) => client.on("error", () => {}));
  db = drizzle(pool);
  server = checkoutServer(db);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server?.close();
  await pool?.end();
  await admin?.end();
});

// The extension owner's connection; again after the server restarted
async function adminClient() {
  const client = new pg.Client({ database });
  client.on("error", () => {});
  await client.connect();
  return client;
}

// Stop or start the test's own server (pg_virtualenv's cluster "regress")
function server_(action: "stop" | "start") {
  execFileSync("pg_ctlcluster", [process.env.PGVERSION ?? "15", "regress", action, ...(action === "stop" ? ["-m", "fast"] : [])]);
}

const phone = (quantity = 1) => [{ productId, quantity }];

async function post(customerId: number, idempotencyKey: string | null, lines: unknown = phone(), voucherCode?: string) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (idempotencyKey !== null) headers["idempotency-key"] = idempotencyKey;
  const res = await fetch(`${baseUrl}/checkout`, {
    method: "POST",
    headers,
    body: JSON.stringify({ customerId, lines, voucherCode }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
}

const keys = new Map<number, string>();

test("33 buyers, 20 in stock: 20 orders, 13 told it sold out with the short line as data, stock 0", async () => {
  for (const customerId of customerIds) keys.set(customerId, randomUUID());
  const results = await Promise.all(customerIds.map((id) => post(id, keys.get(id)!)));

  const ordered = results.filter((r) => r.status === 201);
  const soldOut = results.filter((r) => r.status === 409);
  assert.equal(ordered.length, 20);
  assert.equal(soldOut.length, 13);
  for (const r of ordered) {
    assert.equal(r.body.outcome, "placed");
    assert.deepEqual(r.body.order.lines, [
      { productId, name: "Flash Sale Smartphone", quantity: 1, unitPriceCents: 49900, discountCents: 0, preorderedQuantity: 0 },
    ]);
  }
  for (const r of soldOut) {
    assert.deepEqual(r.body, {
      code: "insufficient_stock",
      sqlstate: "SH001",
      message: "Insufficient stock for Flash Sale Smartphone (available: 0, requested: 1)",
      data: { lines: [{ productId, name: "Flash Sale Smartphone", available: 0, requested: 1, preorderable: null }] },
    });
  }
  assert.equal(new Set(ordered.map((r) => r.body.order.id)).size, 20);

  const [stock] = await db.select().from(productStock).where(eq(productStock.productId, productId));
  assert.equal(stock.stock, 0);
  const [sku] = await db.select({ sku: products.sku }).from(products).where(eq(products.id, productId));
  assert.equal(sku.sku, "FSS-1");
});

test("a retry with the same key: 200, Idempotent-Replayed, the same order, nothing bought", async () => {
  const buyer = customerIds[0];
  const first = await post(buyer, keys.get(buyer)!);
  const again = await post(buyer, keys.get(buyer)!);
  assert.equal(again.status, first.status);
  assert.deepEqual(again.body, first.body);
  if (first.status === 200) {
    assert.equal(first.headers.get("idempotent-replayed"), "true");
    assert.equal(first.body.outcome, "replayed");
  }
  const orders = await db.execute(sql`SELECT count(*)::int AS n FROM orders`);
  assert.equal(orders.rows[0].n, 20);
});

test("the same key with other lines: 422 idempotency_key_reused (SH015)", async () => {
  await admin.query("SELECT shop_restock($1, 1, 'one more')", [productId]);
  const buyer = customerIds[0];
  const key = randomUUID();
  assert.equal((await post(buyer, key)).status, 201);
  const r = await post(buyer, key, phone(2));
  assert.equal(r.status, 422);
  assert.equal(r.body.code, "idempotency_key_reused");
  assert.equal(r.body.sqlstate, "SH015");
});

test("bad requests get their own 400s; an unknown customer 401, an unknown product 400", async () => {
  const buyer = customerIds[0];
  const cases: [string | null, unknown, string][] = [
    [null, phone(), "idempotency_key_required"],
    ["", phone(), "idempotency_key_invalid"],
    [randomUUID(), [], "bad_lines"],
    [randomUUID(), phone(0), "bad_lines"],
    // the database's own check (22023): one product on two lines
    [randomUUID(), [...phone(), ...phone()], "bad_request"],
    [randomUUID(), [{ productId: 999999, quantity: 1 }], "unknown_product"],
  ];
  for (const [key, lines, code] of cases) {
    const r = await post(buyer, key, lines);
    assert.equal(r.status, 400, `${JSON.stringify(lines)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.code, code);
  }
  const nobody = await post(999999, randomUUID());
  assert.equal(nobody.status, 401);
  assert.deepEqual(nobody.body, { code: "unknown_customer", sqlstate: "SH003", message: "Your session names no customer: sign in again." });
});

test("a voucher limited to 5: 5 discounted orders, the others told it is used up (data: limit, used)", async () => {
  // the back office (the extension's owner) creates the voucher and its code
  await admin.query("SELECT shop_restock($1, 100, 'voucher sale')", [productId]);
  const { rows } = await admin.query(
    "SELECT shop_create_voucher('Drizzle 10%', percent_off => 10, usage_limit => 5) AS id",
  );
  const voucherId = Number(rows[0].id);
  await admin.query("SELECT shop_add_voucher_code($1, 'DRIZZLE10')", [voucherId]);
  const buyers = customerIds.slice(20);
  const results = await Promise.all(
    buyers.map((id) => checkout(db, id, phone(), randomUUID(), { voucherCode: "drizzle10" })),
  );
  assert.equal(results.filter((r) => r.status === 201).length, 5);
  const usedUp = results.filter((r) => r.status === 409);
  assert.equal(usedUp.length, buyers.length - 5);
  for (const r of usedUp) {
    assert.deepEqual(r.body, {
      code: "voucher_used_up",
      sqlstate: "SH010",
      message: "Voucher drizzle10 has reached its usage limit (limit: 5, used: 5)",
      data: { voucherCode: "drizzle10", voucherId, limit: 5, used: 5 },
    });
  }
  const discounted = await db.execute(
    sql`SELECT count(*)::int AS n FROM orders WHERE discount_cents = 4990 AND total_cents = 44910`,
  );
  assert.equal(discounted.rows[0].n, 5);
  const unknown = await checkout(db, buyers[0], phone(), randomUUID(), { voucherCode: "NOPE" });
  assert.equal(unknown.status, 422);
  assert.equal(unknown.body.code, "voucher_invalid");
  assert.equal(unknown.body.message, "Voucher NOPE does not exist");
  assert.equal((unknown.body.data as { reason: string }).reason, "unknown");
});

test("the storefront's role cannot write stock, prices or orders", async () => {
  await assert.rejects(db.update(products).set({ stock: 1000 }).where(eq(products.id, productId)),
    (e: unknown) => (e as { cause?: { code?: string } }).cause?.code === "42501" ||
      (e as { code?: string }).code === "42501");
  await assert.rejects(db.execute(sql`DELETE FROM orders`),
    (e: unknown) => (e as { cause?: { code?: string } }).cause?.code === "42501" ||
      (e as { code?: string }).code === "42501");
});

test("a circuit breaker opens while the database is down and closes when it is back; no order lost or doubled", async () => {
  const breaker = checkoutBreaker(db, { resetTimeout: 1500, volumeThreshold: 2, timeout: 5000 });
  const buyers = customerIds.slice(0, 3);
  const before = await admin.query(
    "SELECT customer_id, count(*)::int AS n FROM orders WHERE customer_id = ANY ($1) GROUP BY 1",
    [buyers],
  );
  const tries = buyers.map(() => randomUUID());
  assert.equal((await guardedCheckout(breaker, buyers[0], phone(), tries[0])).status, 201);

  server_("stop");
  try {
    // the database is gone: two failures open the breaker ...
    const down = [
      await guardedCheckout(breaker, buyers[1], phone(), tries[1], { attempts: 1 }),
      await guardedCheckout(breaker, buyers[2], phone(), tries[2], { attempts: 1 }),
    ];
    assert.deepEqual(down.map((r) => r.status), [503, 503]);
    for (const r of down) {
      assert.equal(r.body.code, "database_unreachable");
      assert.equal(r.body.retryable, true);
      assert.equal(r.headers?.["retry-after"], "2");
    }
    assert.ok(breaker.opened, "the breaker is open");
    // ... and then the route answers 503 at once, without trying the database
    const started = Date.now();
    const fast = await guardedCheckout(breaker, buyers[1], phone(), tries[1]);
    assert.equal(fast.status, 503);
    assert.equal(fast.body.code, "unavailable");
    assert.equal(fast.body.maybePlaced, false);
    assert.ok(Number(fast.headers?.["retry-after"]) >= 1);
    assert.ok(Date.now() - started < 100, `answered in ${Date.now() - started} ms`);
  } finally {
    server_("start");
  }

  // past resetTimeout one trial goes through; its success closes the breaker
  await sleep(1600);
  const back = await guardedCheckout(breaker, buyers[1], phone(), tries[1]);
  assert.equal(back.status, 201);
  assert.ok(breaker.closed, "the breaker closed again");
  assert.equal((await guardedCheckout(breaker, buyers[2], phone(), tries[2])).status, 201);
  // the same keys again: the same orders, replayed
  const replay = await guardedCheckout(breaker, buyers[1], phone(), tries[1]);
  assert.equal(replay.status, 200);
  assert.equal(replay.headers?.["idempotent-replayed"], "true");
  assert.deepEqual(replay.body.order, back.body.order);

  admin = await adminClient();
  const after = await admin.query(
    "SELECT customer_id, count(*)::int AS n FROM orders WHERE customer_id = ANY ($1) GROUP BY 1",
    [buyers],
  );
  const count = (rows: { customer_id: string; n: number }[], id: number) =>
    rows.find((r) => Number(r.customer_id) === id)?.n ?? 0;
  for (const id of buyers) {
    assert.equal(count(after.rows, id), count(before.rows, id) + 1, `buyer ${id}: one more order`);
  }
});

test("a crowd told it sold out does not open the breaker", async () => {
  const breaker = checkoutBreaker(db, { resetTimeout: 60000, volumeThreshold: 2 });
  const p = await admin.query(
    "INSERT INTO products (name, price_cents, stock, sku) VALUES ('Sold Out Tablet', 29900, 0, 'SOT-1') RETURNING id",
  );
  const soldOut = Number(p.rows[0].id);
  const crowd = customerIds.slice(3, 13);
  const results = await Promise.all(
    crowd.map((id) => guardedCheckout(breaker, id, [{ productId: soldOut, quantity: 1 }], randomUUID())),
  );
  assert.deepEqual(new Set(results.map((r) => r.status)), new Set([409]));
  assert.ok(breaker.closed, "still closed after 10 SH001s");
});

test("the books agree after the sale", async () => {
  const problems = await admin.query("SELECT * FROM shop_check_integrity()");
  assert.deepEqual(problems.rows, []);
});
