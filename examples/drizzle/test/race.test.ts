// The seed's flash sale through the Drizzle route: 20 in stock, 33 buyers at
// once -> 20 orders, 13 told "Insufficient stock" (409), stock 0.  The shop
// connects as a role that has only shop_grant_app(); its products table has
// a column of the shop's own (sku).  Runs against the server of the PG*
// variables (make test: a throwaway cluster), as its superuser for setup.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { eq, sql } from "drizzle-orm";
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import { cartItems, productStock, products } from "../src/schema.js";
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
  // a connection the server drops while idle (the breaker test stops it)
  pool.on("error", () => {});
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

async function post(customerId: number, idempotencyKey: string) {
  const res = await fetch(`${baseUrl}/checkout`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ customerId, idempotencyKey }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const keys = new Map<number, string>();

test("33 buyers, 20 in stock: 20 orders, 13 told it sold out, stock 0", async () => {
  // every buyer puts the phone in the cart (the storefront writes carts)
  for (const customerId of customerIds) {
    await db.insert(cartItems).values({ customerId, productId, quantity: 1 });
    keys.set(customerId, randomUUID());
  }
  const results = await Promise.all(customerIds.map((id) => post(id, keys.get(id)!)));

  const ordered = results.filter((r) => r.status === 201);
  const soldOut = results.filter((r) => r.status === 409);
  assert.equal(ordered.length, 20);
  assert.equal(soldOut.length, 13);
  for (const r of soldOut) {
    assert.equal(r.body.error, "insufficient_stock");
    assert.equal(r.body.message, "Insufficient stock for Flash Sale Smartphone (available: 0, requested: 1)");
    assert.deepEqual(r.body.lines, [`Product ${productId} "Flash Sale Smartphone": available 0, requested 1.`]);
  }
  assert.equal(new Set(ordered.map((r) => r.body.orderId)).size, 20);

  const [stock] = await db.select().from(productStock).where(eq(productStock.productId, productId));
  assert.equal(stock.stock, 0);
  const [sku] = await db.select({ sku: products.sku }).from(products).where(eq(products.id, productId));
  assert.equal(sku.sku, "FSS-1");
});

test("a retry with the same key returns the same order, and buys nothing more", async () => {
  const buyer = customerIds[0];
  const first = await post(buyer, keys.get(buyer)!);
  const again = await post(buyer, keys.get(buyer)!);
  assert.equal(again.status, first.status);
  assert.deepEqual(again.body, first.body);
  const orders = await db.execute(sql`SELECT count(*)::int AS n FROM orders`);
  assert.equal(orders.rows[0].n, 20);
});

test("an empty cart and a bad key get their own answers", async () => {
  const buyer = customerIds[0];
  assert.equal((await checkout(db, buyer, randomUUID())).status, 400);
  const bad = await checkout(db, buyer, "");
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error, "bad_request");
});

test("a voucher limited to 5: 5 discounted orders, the others told it is used up", async () => {
  // the back office (the extension's owner) creates the voucher and its code
  await admin.query("SELECT shop_restock($1, 100, 'voucher sale')", [productId]);
  await admin.query(
    "SELECT shop_add_voucher_code(shop_create_voucher('Drizzle 10%', percent_off => 10, usage_limit => 5), 'DRIZZLE10')",
  );
  const buyers = customerIds.slice(20);
  for (const customerId of buyers) {
    await db.insert(cartItems).values({ customerId, productId, quantity: 1 }).onConflictDoNothing();
  }
  const results = await Promise.all(
    buyers.map((id) => checkout(db, id, randomUUID(), { voucherCode: "drizzle10" })),
  );
  assert.equal(results.filter((r) => r.status === 201).length, 5);
  const usedUp = results.filter((r) => r.status === 409);
  assert.equal(usedUp.length, buyers.length - 5);
  for (const r of usedUp) {
    assert.equal(r.body.error, "voucher_used_up");
    assert.equal(r.body.message, "Voucher drizzle10 has reached its usage limit (limit: 5, used: 5)");
  }
  const discounted = await db.execute(
    sql`SELECT count(*)::int AS n FROM orders WHERE discount_cents = 4990 AND total_cents = 44910`,
  );
  assert.equal(discounted.rows[0].n, 5);
  const unknown = await checkout(db, buyers[0], randomUUID(), { voucherCode: "NOPE" });
  assert.equal(unknown.status, 422);
  assert.equal(unknown.body.error, "voucher_invalid");
  assert.equal(unknown.body.message, "Voucher NOPE does not exist");
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
  for (const customerId of buyers) {
    await db.insert(cartItems).values({ customerId, productId, quantity: 1 }).onConflictDoNothing();
  }
  const before = await admin.query(
    "SELECT customer_id, count(*)::int AS n FROM orders WHERE customer_id = ANY ($1) GROUP BY 1",
    [buyers],
  );
  const tries = buyers.map(() => randomUUID());
  assert.equal((await guardedCheckout(breaker, buyers[0], tries[0])).status, 201);

  server_("stop");
  try {
    // the database is gone: two failures open the breaker ...
    const down = [
      await guardedCheckout(breaker, buyers[1], tries[1], { attempts: 1 }),
      await guardedCheckout(breaker, buyers[2], tries[2], { attempts: 1 }),
    ];
    assert.deepEqual(down.map((r) => r.status), [503, 503]);
    assert.ok(breaker.opened, "the breaker is open");
    // ... and then the route answers 503 at once, without trying the database
    const started = Date.now();
    const fast = await guardedCheckout(breaker, buyers[1], tries[1]);
    assert.equal(fast.status, 503);
    assert.equal(fast.body.error, "unavailable");
    assert.ok(Date.now() - started < 100, `answered in ${Date.now() - started} ms`);
  } finally {
    server_("start");
  }

  // past resetTimeout one trial goes through; its success closes the breaker
  await sleep(1600);
  const back = await guardedCheckout(breaker, buyers[1], tries[1]);
  assert.equal(back.status, 201);
  assert.ok(breaker.closed, "the breaker closed again");
  assert.equal((await guardedCheckout(breaker, buyers[2], tries[2])).status, 201);
  // the same keys again: the same orders
  assert.deepEqual((await guardedCheckout(breaker, buyers[1], tries[1])).body, back.body);

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
  for (const customerId of crowd) {
    await db.insert(cartItems).values({ customerId, productId: soldOut, quantity: 1 });
  }
  const results = await Promise.all(crowd.map((id) => guardedCheckout(breaker, id, randomUUID())));
  assert.deepEqual(new Set(results.map((r) => r.status)), new Set([409]));
  assert.ok(breaker.closed, "still closed after 10 SH001s");
  for (const customerId of crowd) {
    await db.delete(cartItems).where(eq(cartItems.customerId, customerId));
  }
});

test("the books agree after the sale", async () => {
  const problems = await admin.query("SELECT * FROM shop_check_integrity()");
  assert.deepEqual(problems.rows, []);
});
