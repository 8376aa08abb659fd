// The API with app.inject() (Fastify's testing guide): build() in this
// process on a real PostgreSQL (a shop of its own, harness.ts), every
// outcome of POST /api/checkout answered as docs/reference.md's "SQLSTATEs
// over HTTP" says: placed, replayed, each refusal with its figures, a key
// reused, bad input, an unknown customer and product, a lock timeout, the
// connection broken after the statement was sent, a pool timeout, the
// database down and the breaker open, and an error the table does not know;
// and a bundle (1.3): listed with its parts, bought, refused for a part.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { build } from "../src/app.js";
import { createPool } from "../src/db.js";
import { StockHub } from "../src/stock.js";
import { createShop, one, url } from "./harness.js";

const HOT = 1; // Flash Sale Smartphone, 20 in stock
const EARBUDS = 2; // 200
const CASE = 3; // 500
const CHARGER = 4; // 0
const DB = "storefront_api";

type App = { app: FastifyInstance; pool: pg.Pool; hub: StockHub };

/** build() on a pool of the app role to `db`, as main.ts builds it */
function app(db: string, poolOptions: pg.PoolConfig = {}, breaker = {}): App {
  const pool = createPool({ connectionString: url(db, "app"), max: 4, connectionTimeoutMillis: 2000, ...poolOptions });
  const hub = new StockHub(pool, { connectionString: url(db, "app") });
  return { app: build({ pool, hub, cookieSecret: "test", breaker }), pool, hub };
}

async function close({ app, pool, hub }: App) {
  await app.close();
  await hub.stop();
  await pool.end();
}

async function shopper(a: FastifyInstance): Promise<{ cookie: string; id: number }> {
  const res = await a.inject({ method: "POST", url: "/api/session" });
  assert.equal(res.statusCode, 200);
  return { cookie: String(res.headers["set-cookie"]).split(";")[0], id: res.json().customerId };
}

let keys = 0;
const newKey = () => `api-${process.pid}-${++keys}`;

function checkout(
  a: FastifyInstance,
  cookie: string | null,
  key: string | null,
  body: unknown,
  raw = false,
) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (cookie !== null) headers.cookie = cookie;
  if (key !== null) headers["idempotency-key"] = key;
  return a.inject({ method: "POST", url: "/api/checkout", headers, payload: raw ? String(body) : JSON.stringify(body) });
}

const buy = (productId: number, quantity = 1) => ({ lines: [{ productId, quantity }] });

/** Wait until a backend of the app role waits on a lock (a state, not a time) */
async function waitingOnLock(owner: pg.Pool, db: string) {
  for (let i = 0; i < 500; i++) {
    const r = await one(
      owner,
      `SELECT pid FROM pg_stat_activity
        WHERE datname = $1 AND usename = 'storefront' AND wait_event_type = 'Lock'`,
      [db],
    );
    if (r !== undefined) return Number(r.pid);
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("no checkout waits on the lock");
}

let owner: pg.Pool;
let shop: App;
before(() => {
  owner = createShop(DB, 20);
  shop = app(DB);
});
after(async () => {
  await close(shop);
  await owner.end();
});

test("placed: 201 and the order, the stored cart emptied", async () => {
  const s = await shopper(shop.app);
  const res = await checkout(shop.app, s.cookie, newKey(), { lines: [{ productId: EARBUDS, quantity: 2 }, { productId: CASE, quantity: 1 }] });
  assert.equal(res.statusCode, 201, res.body);
  assert.equal(res.headers["idempotent-replayed"], undefined);
  const body = res.json();
  assert.equal(body.outcome, "placed");
  assert.deepEqual(
    { ...body.order, id: 0 },
    {
      id: 0,
      status: "placed",
      totalCents: 2 * 7900 + 1900,
      discountCents: 0,
      paymentDeadline: null,
      lines: [
        { productId: EARBUDS, name: "Wireless Earbuds", quantity: 2, unitPriceCents: 7900, discountCents: 0, preorderedQuantity: 0 },
        { productId: CASE, name: "Phone Case", quantity: 1, unitPriceCents: 1900, discountCents: 0, preorderedQuantity: 0 },
      ],
    },
  );
  const books = await one(owner, "SELECT count(*)::int AS orders, (SELECT count(*)::int FROM cart_items WHERE customer_id = $1) AS cart FROM orders WHERE customer_id = $1", [s.id]);
  assert.deepEqual(books, { orders: 1, cart: 0 });
  const latest = await shop.app.inject({ method: "GET", url: "/api/orders/latest", headers: { cookie: s.cookie } });
  assert.deepEqual(latest.json().order, body.order);
});

test("replayed: the same key again is 200 with Idempotent-Replayed and the same order, nothing bought twice", async () => {
  const s = await shopper(shop.app);
  const key = newKey();
  const first = await checkout(shop.app, s.cookie, key, buy(EARBUDS));
  assert.equal(first.statusCode, 201);
  const again = await checkout(shop.app, s.cookie, key, buy(EARBUDS));
  assert.equal(again.statusCode, 200);
  assert.equal(again.headers["idempotent-replayed"], "true");
  assert.deepEqual(again.json(), { ...first.json(), outcome: "replayed" });
  assert.equal((await one(owner, "SELECT count(*)::int AS n FROM orders WHERE customer_id = $1", [s.id])).n, 1);
});

test("a voucher: the discount in the order", async () => {
  await owner.query("SELECT shop_add_voucher_code(shop_create_voucher('Ten', percent_off => 10), 'TEN')");
  const s = await shopper(shop.app);
  const res = await checkout(shop.app, s.cookie, newKey(), { ...buy(CASE, 10), voucherCode: "ten" });
  assert.equal(res.statusCode, 201, res.body);
  assert.equal(res.json().order.discountCents, 1900);
  assert.equal(res.json().order.totalCents, 17100);
});

test("SH001: 409 insufficient_stock, every short line", async () => {
  const s = await shopper(shop.app);
  const res = await checkout(shop.app, s.cookie, newKey(), { lines: [{ productId: CHARGER, quantity: 1 }, { productId: HOT, quantity: 25 }] });
  assert.equal(res.statusCode, 409);
  const { stock } = await one(owner, "SELECT stock FROM product_stock WHERE product_id = $1", [HOT]);
  assert.deepEqual(res.json(), {
    code: "insufficient_stock",
    sqlstate: "SH001",
    message: `Insufficient stock for Flash Sale Smartphone (available: ${stock}, requested: 25)`,
    data: {
      lines: [
        { productId: HOT, name: "Flash Sale Smartphone", available: stock, requested: 25, preorderable: null },
        { productId: CHARGER, name: "Fast Charger", available: 0, requested: 1, preorderable: null },
      ],
    },
  });
  // nothing changed: no order, no cart
  assert.equal((await one(owner, "SELECT count(*)::int AS n FROM cart_items WHERE customer_id = $1", [s.id])).n, 0);
});

test("SH005: 409 purchase_limit", async () => {
  await owner.query("SELECT shop_set_purchase_limit($1, 1)", [EARBUDS]);
  try {
    const s = await shopper(shop.app);
    const res = await checkout(shop.app, s.cookie, newKey(), buy(EARBUDS, 2));
    assert.equal(res.statusCode, 409);
    assert.deepEqual(res.json(), {
      code: "purchase_limit",
      sqlstate: "SH005",
      message: "Purchase limit for Wireless Earbuds is 1 per customer (already bought: 0, requested: 2)",
      data: { lines: [{ productId: EARBUDS, name: "Wireless Earbuds", limit: 1, alreadyBought: 0, requested: 2 }] },
    });
  } finally {
    await owner.query("SELECT shop_set_purchase_limit($1, NULL)", [EARBUDS]);
  }
});

test("SH009: 422 voucher_invalid", async () => {
  const s = await shopper(shop.app);
  const res = await checkout(shop.app, s.cookie, newKey(), { ...buy(CASE), voucherCode: "NOPE" });
  assert.equal(res.statusCode, 422);
  const body = res.json();
  assert.deepEqual(
    { code: body.code, sqlstate: body.sqlstate, message: body.message, reason: body.data.reason, voucherCode: body.data.voucherCode, voucherId: body.data.voucherId },
    { code: "voucher_invalid", sqlstate: "SH009", message: "Voucher NOPE does not exist", reason: "unknown", voucherCode: "NOPE", voucherId: null },
  );
});

test("SH010: 409 voucher_used_up", async () => {
  const { id } = await one(owner, "SELECT shop_create_voucher('Once', percent_off => 5, usage_limit => 1) AS id");
  await owner.query("SELECT shop_add_voucher_code($1, 'ONCE')", [id]);
  const first = await shopper(shop.app);
  assert.equal((await checkout(shop.app, first.cookie, newKey(), { ...buy(CASE), voucherCode: "ONCE" })).statusCode, 201);
  const s = await shopper(shop.app);
  const res = await checkout(shop.app, s.cookie, newKey(), { ...buy(CASE), voucherCode: "ONCE" });
  assert.equal(res.statusCode, 409);
  assert.deepEqual(res.json(), {
    code: "voucher_used_up",
    sqlstate: "SH010",
    message: "Voucher ONCE has reached its usage limit (limit: 1, used: 1)",
    data: { voucherCode: "ONCE", voucherId: Number(id), limit: 1, used: 1 },
  });
});

test("SH011: 409 voucher_customer_limit", async () => {
  const { id } = await one(owner, "SELECT shop_create_voucher('Per buyer', percent_off => 5, per_customer_limit => 1) AS id");
  await owner.query("SELECT shop_add_voucher_code($1, 'MINE')", [id]);
  const s = await shopper(shop.app);
  assert.equal((await checkout(shop.app, s.cookie, newKey(), { ...buy(CASE), voucherCode: "MINE" })).statusCode, 201);
  const res = await checkout(shop.app, s.cookie, newKey(), { ...buy(CASE), voucherCode: "MINE" });
  assert.equal(res.statusCode, 409);
  assert.deepEqual(res.json(), {
    code: "voucher_customer_limit",
    sqlstate: "SH011",
    message: "Voucher MINE can be used 1 time per customer (already used: 1)",
    data: { voucherCode: "MINE", voucherId: Number(id), limit: 1, alreadyUsed: 1 },
  });
});

test("SH015: the key reused for other lines or another code is 422 idempotency_key_reused; nothing changed", async () => {
  const s = await shopper(shop.app);
  const key = newKey();
  assert.equal((await checkout(shop.app, s.cookie, key, buy(CASE))).statusCode, 201);
  for (const body of [buy(CASE, 2), buy(EARBUDS), { ...buy(CASE), voucherCode: "TEN" }]) {
    const res = await checkout(shop.app, s.cookie, key, body);
    assert.equal(res.statusCode, 422, JSON.stringify(body));
    assert.equal(res.json().code, "idempotency_key_reused");
    assert.equal(res.json().sqlstate, "SH015");
  }
  assert.equal((await one(owner, "SELECT count(*)::int AS n FROM orders WHERE customer_id = $1", [s.id])).n, 1);
});

test("bad input: 400 with a code of its own, before or from the database", async () => {
  const s = await shopper(shop.app);
  const cases: [string | null, unknown, string, boolean?][] = [
    [null, buy(CASE), "idempotency_key_required"],
    ["", buy(CASE), "idempotency_key_invalid"],
    ["k".repeat(256), buy(CASE), "idempotency_key_invalid"],
    [newKey(), {}, "bad_lines"],
    [newKey(), { lines: [] }, "bad_lines"],
    [newKey(), buy(CASE, 0), "bad_lines"],
    [newKey(), buy(CASE, 1001), "bad_lines"],
    [newKey(), { lines: [{ productId: "x", quantity: 1 }] }, "bad_lines"],
    [newKey(), { lines: Array.from({ length: 51 }, (_, i) => ({ productId: i + 1, quantity: 1 })) }, "bad_lines"],
    [newKey(), { ...buy(CASE), voucherCode: "" }, "bad_request"],
    // the database's own check (22023): one product on two lines
    [newKey(), { lines: [{ productId: CASE, quantity: 1 }, { productId: CASE, quantity: 2 }] }, "bad_request"],
    [newKey(), "{not json", "bad_request", true],
  ];
  for (const [key, body, code, raw] of cases) {
    const res = await checkout(shop.app, s.cookie, key, body, raw);
    assert.equal(res.statusCode, 400, `${JSON.stringify(body)}: ${res.body}`);
    assert.equal(res.json().code, code, `${JSON.stringify(body)}: ${res.body}`);
    assert.equal(typeof res.json().message, "string");
  }
  assert.equal((await one(owner, "SELECT count(*)::int AS n FROM orders WHERE customer_id = $1", [s.id])).n, 0);
});

test("no session: 401 no_session; a session whose customer is gone (SH003): 401 unknown_customer", async () => {
  const none = await checkout(shop.app, null, newKey(), buy(CASE));
  assert.equal(none.statusCode, 401);
  assert.equal(none.json().code, "no_session");
  const forged = await checkout(shop.app, "shopper=1.forged", newKey(), buy(CASE));
  assert.equal(forged.json().code, "no_session");

  const s = await shopper(shop.app);
  await owner.query("DELETE FROM customers WHERE id = $1", [s.id]);
  const res = await checkout(shop.app, s.cookie, newKey(), buy(CASE));
  assert.equal(res.statusCode, 401, res.body);
  assert.deepEqual(res.json(), {
    code: "unknown_customer",
    sqlstate: "SH003",
    message: "Your session names no customer: sign in again.",
  });
});

test("an unknown product (SH004): 400 unknown_product", async () => {
  const s = await shopper(shop.app);
  const res = await checkout(shop.app, s.cookie, newKey(), { lines: [{ productId: CASE, quantity: 1 }, { productId: 999999, quantity: 1 }] });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().code, "unknown_product");
  assert.equal(res.json().sqlstate, "SH004");
});

test("a lock timeout (55P03): 503 lock_timeout, Retry-After, not placed; the retry with the key places it", async () => {
  const s = await shopper(shop.app);
  const key = newKey();
  const holder = await owner.connect();
  try {
    await holder.query("BEGIN");
    await holder.query("SELECT FROM products WHERE id = $1 FOR NO KEY UPDATE", [CASE]);
    const res = await checkout(shop.app, s.cookie, key, buy(CASE)); // checkout.lock_timeout of the role: 1 s
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers["retry-after"], "1");
    assert.deepEqual(res.json(), {
      code: "lock_timeout",
      message: "The shop is very busy: please try again in a moment.",
      retryable: true,
      maybePlaced: false,
    });
  } finally {
    await holder.query("COMMIT");
    holder.release();
  }
  assert.equal((await checkout(shop.app, s.cookie, key, buy(CASE))).statusCode, 201);
});

test("the connection broken after the statement was sent: 503 maybePlaced; the retry with the key tells", async () => {
  // the app's connections wait up to 30 s for a lock here: time to end one mid-statement
  const slow = app(DB, { options: "-c checkout.lock_timeout=30s" });
  const s = await shopper(slow.app);
  const key = newKey();
  const holder = await owner.connect();
  try {
    await holder.query("BEGIN");
    await holder.query("SELECT FROM products WHERE id = $1 FOR NO KEY UPDATE", [CASE]);
    const pending = checkout(slow.app, s.cookie, key, buy(CASE));
    const pid = await waitingOnLock(owner, DB);
    await owner.query("SELECT pg_terminate_backend($1)", [pid]);
    const res = await pending;
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers["retry-after"], "2");
    assert.equal(res.json().code, "database_unreachable");
    assert.equal(res.json().maybePlaced, true);
    await holder.query("COMMIT");
    // the broken client was destroyed, not reused: the next call works
    const retry = await checkout(slow.app, s.cookie, key, buy(CASE));
    assert.equal(retry.statusCode, 201, retry.body);
    const again = await checkout(slow.app, s.cookie, key, buy(CASE));
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().order.id, retry.json().order.id);
  } finally {
    holder.release();
    await close(slow);
  }
});

test("every connection of the pool busy: 503 pool_timeout, Retry-After", async () => {
  const tiny = app(DB, { max: 1, connectionTimeoutMillis: 300 });
  const s = await shopper(tiny.app);
  const held = await tiny.pool.connect();
  try {
    const res = await checkout(tiny.app, s.cookie, newKey(), buy(CASE));
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers["retry-after"], "1");
    assert.deepEqual(res.json(), {
      code: "pool_timeout",
      message: "The shop is very busy: please try again in a moment.",
      retryable: true,
      maybePlaced: false,
    });
  } finally {
    held.release();
    await close(tiny);
  }
});

test("the database down: 503 database_unreachable, not placed; then the breaker opens: 503 unavailable at once", async () => {
  // a port nobody listens on
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const down = app(DB, { connectionString: url(DB, "app", String(port)) }, { resetTimeout: 60000, volumeThreshold: 2 });
  const cookie = `shopper=${1}.${signFor(down.app, 1)}`;
  try {
    for (let i = 0; i < 2; i++) {
      const res = await checkout(down.app, cookie, newKey(), buy(CASE));
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers["retry-after"], "2");
      assert.deepEqual(res.json(), {
        code: "database_unreachable",
        message: "We could not reach the shop's database: please try again in a moment.",
        retryable: true,
        maybePlaced: false,
      });
    }
    const started = Date.now();
    const open = await checkout(down.app, cookie, newKey(), buy(CASE));
    assert.ok(Date.now() - started < 100);
    assert.equal(open.statusCode, 503);
    assert.ok(Number(open.headers["retry-after"]) >= 59);
    assert.equal(open.json().code, "unavailable");
    assert.equal(open.json().maybePlaced, false);
    const health = await down.app.inject({ method: "GET", url: "/api/health" });
    assert.equal(health.json().breaker, "open");
    // the other routes that need the database: 503 too, never 500
    const page = await down.app.inject({ method: "GET", url: "/" });
    assert.equal(page.statusCode, 503);
    const cart = await down.app.inject({ method: "GET", url: "/api/cart", headers: { cookie } });
    assert.equal(cart.statusCode, 503);
  } finally {
    await close(down);
  }
});

test("an error the table does not know: 500 internal, nothing of it sent", async () => {
  // the owner's connection to a database without the extension: shop_place_order does not exist
  await owner.query("DROP DATABASE IF EXISTS storefront_api_bare");
  await owner.query("CREATE DATABASE storefront_api_bare");
  const bare = app("storefront_api_bare", { connectionString: url("storefront_api_bare") });
  const errors: unknown[] = [];
  const logged = console.error;
  console.error = (...args: unknown[]) => errors.push(args);
  try {
    const res = await checkout(bare.app, `shopper=1.${signFor(bare.app, 1)}`, newKey(), buy(CASE));
    assert.equal(res.statusCode, 500);
    assert.deepEqual(res.json(), { code: "internal", message: "Something went wrong on our side: please try again." });
    assert.equal(errors.length, 1, "logged by the server");
  } finally {
    console.error = logged;
    await close(bare);
  }
});

test("PUT then GET /api/cart: the stored cart", async () => {
  const s = await shopper(shop.app);
  const put = await shop.app.inject({
    method: "PUT",
    url: "/api/cart",
    headers: { cookie: s.cookie, "content-type": "application/json" },
    payload: JSON.stringify({ lines: [{ productId: CASE, quantity: 3 }] }),
  });
  assert.equal(put.statusCode, 200, put.body);
  const get = await shop.app.inject({ method: "GET", url: "/api/cart", headers: { cookie: s.cookie } });
  assert.deepEqual(get.json(), {
    lines: [{ productId: CASE, name: "Phone Case", quantity: 3, available: await stockOf(CASE), canFulfil: true }],
    checkoutWouldSucceed: true,
  });
});

test("a bundle: listed with its parts and what they make, bought as one line, refused naming its short part", async () => {
  const db = "storefront_api_bundles";
  const bundleOwner = createShop(db, 20);
  const bundles = app(db);
  try {
    const wrap = Number((await one(bundleOwner, "INSERT INTO products (name, price_cents, stock) VALUES ('Gift Wrap', 300, 3) RETURNING id")).id);
    const bundle = async (name: string, cents: number, parts: [number, number][]) =>
      Number(
        (await one(bundleOwner, "SELECT shop_create_bundle($1, $2, $3) AS id", [
          name,
          cents,
          JSON.stringify(parts.map(([product_id, quantity]) => ({ product_id, quantity }))),
        ])).id,
      );
    const box = await bundle("Gift Box", 9900, [[EARBUDS, 1], [wrap, 1]]); // 3: the wrap's 3
    const kit = await bundle("Case Kit", 2900, [[CASE, 1], [wrap, 2]]); // 1: floor(3 / 2)
    const dud = await bundle("Charger Kit", 3900, [[CHARGER, 1], [CASE, 1]]); // 0: no charger
    await bundles.hub.start();

    const listed = async () => new Map<number, any>((await bundles.app.inject({ method: "GET", url: "/api/products" })).json().products.map((p: any) => [p.id, p]));
    let products = await listed();
    assert.deepEqual(products.get(box), {
      id: box, name: "Gift Box", priceCents: 9900, stock: 3, soldOut: false, low: true,
      parts: [{ productId: EARBUDS, name: "Wireless Earbuds", quantity: 1 }, { productId: wrap, name: "Gift Wrap", quantity: 1 }],
    });
    assert.deepEqual(products.get(kit).parts, [{ productId: CASE, name: "Phone Case", quantity: 1 }, { productId: wrap, name: "Gift Wrap", quantity: 2 }]);
    assert.equal(products.get(kit).stock, 1);
    assert.deepEqual({ stock: products.get(dud).stock, soldOut: products.get(dud).soldOut }, { stock: 0, soldOut: true });
    assert.equal("parts" in products.get(HOT), false, "a product that is no bundle has no parts");

    // the page says what each bundle holds; a sold-out bundle's button is disabled in the first paint
    const html = (await bundles.app.inject({ method: "GET", url: "/" })).body;
    assert.match(html, new RegExp(`<p class="parts" id="parts-${box}">Bundle: Wireless Earbuds \\+ Gift Wrap</p>`));
    assert.match(html, new RegExp(`<p class="parts" id="parts-${kit}">Bundle: Phone Case \\+ 2 × Gift Wrap</p>`));
    assert.match(html, new RegExp(`<button type="button" class="buy" data-id="${dud}"[^>]* disabled>Sold out</button>`));
    assert.match(html, new RegExp(`<button type="button" class="buy" data-id="${box}"[^>]*>Buy now</button>`));

    // bought: one line, the bundle's, at its price; its parts leave stock
    const s = await shopper(bundles.app);
    const placed = await checkout(bundles.app, s.cookie, newKey(), buy(kit));
    assert.equal(placed.statusCode, 201, placed.body);
    assert.deepEqual(placed.json().order.lines, [
      { productId: kit, name: "Case Kit", quantity: 1, unitPriceCents: 2900, discountCents: 0, preorderedQuantity: 0 },
    ]);
    assert.equal(placed.json().order.totalCents, 2900);
    // a part short: 409 insufficient_stock, the bundle's message, the part's figures
    const refused = await checkout(bundles.app, s.cookie, newKey(), buy(kit));
    assert.equal(refused.statusCode, 409, refused.body);
    assert.deepEqual(refused.json(), {
      code: "insufficient_stock",
      sqlstate: "SH001",
      message: "Insufficient stock for Case Kit: part Gift Wrap (available: 1, requested: 2)",
      data: { lines: [{ productId: wrap, name: "Gift Wrap", available: 1, requested: 2, preorderable: null, bundle: "Case Kit" }] },
    });
    // the server's own sale is read at once: the kit sold out, the box down to the wrap's 1
    for (let i = 0; i < 100 && !(products.get(kit).soldOut && products.get(box).stock === 1); i++) {
      await new Promise((r) => setTimeout(r, 50));
      products = await listed();
    }
    assert.deepEqual(
      [products.get(kit).soldOut, products.get(box).stock, products.get(wrap).stock],
      [true, 1, 1],
    );
    assert.equal((await one(bundleOwner, "SELECT count(*)::int AS n FROM shop_check_integrity()")).n, 0);
  } finally {
    await close(bundles);
    await bundleOwner.end();
  }
});

const stockOf = async (id: number) => (await one(owner, "SELECT stock FROM product_stock WHERE product_id = $1", [id])).stock;

/** The cookie signature build() makes with the secret "test" */
function signFor(a: FastifyInstance, id: number): string {
  return a.sessions.cookie(id).split(";")[0].split(".")[1];
}
