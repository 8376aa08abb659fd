// The server outlives its database: the real server (a child process) under
// a stream of checkouts while the database is stopped and started again,
// repeatedly, with pg_ctlcluster stop -m fast and -m immediate, at a random
// moment and while checkouts wait inside the database (statements in
// flight, cut off by the stop).  Each client retries a 503 with the same
// key, after Retry-After, until it gets an answer that is final.
//
// Then: the process never exited; every request was answered (no socket
// error, no 500, nothing but 200, 201, 409 and 503); and every key ended
// as exactly one order, the one its client was told of, or as SH001 with
// no order; stock and ledger agree.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { createShop, one, ownerPool, startServer } from "./harness.js";

const HOT = 1; // 60 in stock: sold out early, SH001 from then on
const CASE = 3; // stock enough for the whole test
const DB = "storefront_outages";
const HOT_STOCK = 60;
const CLIENTS = 12;
const THINK_MS = 60; // each client's pause between checkouts: the stream lasts through every stop
const SHOPPERS = 200;
const STOPS = 6;

type Final = { status: number; productId: number; orderId?: number; code?: string };

test("the database stopped and started 6 times under checkouts: every request answered, every key one order or SH001", { timeout: 240000 }, async () => {
  const ctl = process.env.STOREFRONT_PG_CTL;
  assert.ok(ctl, "STOREFRONT_PG_CTL names the cluster's pg_ctlcluster");
  let owner: pg.Pool = createShop(DB, HOT_STOCK);
  await owner.query("SELECT shop_restock($1, 100000, 'outage test')", [CASE]);
  const caseStock = (await one(owner, "SELECT stock FROM product_stock WHERE product_id = $1", [CASE])).stock;
  const shop = await startServer(DB, { BREAKER_RESET_MS: "1000", POOL_SIZE: "8" });
  let exited: number | null | undefined;
  shop.process.on("exit", (code) => (exited = code));

  const seen = { statuses: {} as Record<number, number>, retryCodes: {} as Record<string, number>, maybePlaced: 0, replayed: 0, transportErrors: [] as string[] };
  const finals = new Map<string, Final>();
  const cookies: string[] = [];
  for (let i = 0; i < SHOPPERS; i++) {
    const res = await fetch(`${shop.url}/api/session`, { method: "POST" });
    cookies.push(res.headers.get("set-cookie")!.split(";")[0]);
  }

  /** One logical checkout: retried with its key on every 503 until it is final */
  async function checkout(i: number): Promise<void> {
    const key = `outage-${i}`;
    const productId = i % 3 === 0 ? HOT : CASE;
    for (;;) {
      let res: Response;
      try {
        res = await fetch(`${shop.url}/api/checkout`, {
          method: "POST",
          headers: { "content-type": "application/json", cookie: cookies[i % SHOPPERS], "idempotency-key": key },
          body: JSON.stringify({ lines: [{ productId, quantity: 1 }] }),
          signal: AbortSignal.timeout(30000),
        });
      } catch (e) {
        seen.transportErrors.push(`${key}: ${(e as Error).message}`);
        return;
      }
      const body = await res.json();
      seen.statuses[res.status] = (seen.statuses[res.status] ?? 0) + 1;
      if (res.status === 503) {
        assert.equal(body.retryable, true);
        assert.ok(Number(res.headers.get("retry-after")) >= 1, "Retry-After");
        if (body.maybePlaced === true) seen.maybePlaced++;
        seen.retryCodes[body.code] = (seen.retryCodes[body.code] ?? 0) + 1;
        await sleep(Number(res.headers.get("retry-after")) * 1000 * (0.5 + Math.random() / 2));
        continue;
      }
      if (res.status === 200) seen.replayed++;
      finals.set(key, { status: res.status, productId, orderId: body.order?.id, code: body.code });
      return;
    }
  }

  let next = 0;
  let answered = 0;
  let stopped = false;
  const clients = Array.from({ length: CLIENTS }, async () => {
    while (!stopped) {
      await checkout(next++);
      answered++;
      await sleep(THINK_MS * (0.5 + Math.random()));
    }
  });

  const modes: string[] = [];
  try {
    for (let stop = 0; stop < STOPS; stop++) {
      // the stream back: some checkouts answered since the last start
      const from = answered;
      while (answered < from + 30) await sleep(10);
      const mode = stop % 2 === 0 ? "fast" : "immediate";
      if (stop % 3 === 2) {
        // statements in flight for sure: a product's row held, checkouts
        // queue on it inside the database, then the server stops under them
        const holder = await owner.connect();
        holder.on("error", () => {});
        await holder.query("BEGIN");
        await holder.query("SELECT FROM products WHERE id = $1 FOR NO KEY UPDATE", [CASE]);
        let waiting = 0;
        for (let i = 0; i < 200 && waiting < 3; i++) {
          waiting = (await one(owner, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'storefront' AND wait_event_type = 'Lock'")).n;
          if (waiting < 3) await sleep(5);
        }
        execSync(`${ctl} stop -m ${mode}`);
        holder.release(new Error("server stopped"));
        modes.push(`${mode} with ${waiting} checkouts waiting on a lock`);
      } else {
        await sleep(Math.random() * 20);
        execSync(`${ctl} stop -m ${mode}`);
        modes.push(mode);
      }
      await owner.end().catch(() => {});
      await sleep(300 + Math.random() * 700); // down: requests get 503, the breaker opens
      execSync(`${ctl} start`);
      owner = ownerPool(DB);
    }
    stopped = true;
    await Promise.all(clients);
  } finally {
    stopped = true;
    execSync(`${ctl} start 2>/dev/null || true`);
  }

  try {
    const statuses = Object.entries(seen.statuses).map(([s, n]) => `${s}: ${n}`).join(", ");
    if (process.env.STOREFRONT_DEBUG) console.log(shop.log.join(""));
    console.log(`# outages: ${finals.size} checkouts; stops ${modes.join(", ")}; responses ${statuses}; 503 ${JSON.stringify(seen.retryCodes)}, maybePlaced ${seen.maybePlaced}; finals replayed ${seen.replayed}`);
    assert.equal(exited, undefined, `the server exited (${exited}): ${shop.log.join("")}`);
    assert.deepEqual(seen.transportErrors, [], "every request answered");
    assert.deepEqual(Object.keys(seen.statuses).filter((s) => !["200", "201", "409", "503"].includes(s)), [], statuses);
    assert.ok((seen.statuses[503] ?? 0) > 0, "some requests met the outages");
    assert.ok(seen.maybePlaced > 0, "some statements were cut off in flight (503 maybePlaced)");
    assert.equal(finals.size, next);

    // every key: exactly the order its client was told of, or SH001 and no order
    const { rows } = await owner.query(
      `SELECT k.idempotency_key AS key, k.order_id,
              (SELECT count(*) FROM order_items AS i WHERE i.order_id = k.order_id)::int AS lines,
              (SELECT min(i.product_id) FROM order_items AS i WHERE i.order_id = k.order_id)::int AS product_id,
              (SELECT sum(i.quantity) FROM order_items AS i WHERE i.order_id = k.order_id)::int AS units
         FROM idempotency_keys AS k
        WHERE k.idempotency_key LIKE 'outage-%'`,
    );
    const byKey = new Map(rows.map((r) => [r.key as string, r]));
    const wrong: string[] = [];
    for (const [key, f] of finals) {
      const row = byKey.get(key);
      if (f.status === 201 || f.status === 200) {
        if (row === undefined || Number(row.order_id) !== f.orderId || row.lines !== 1 || row.units !== 1 || row.product_id !== f.productId) {
          wrong.push(`${key}: told order ${f.orderId}, the books ${JSON.stringify(row)}`);
        }
      } else if (f.status === 409 && f.code === "insufficient_stock" && f.productId === HOT) {
        if (row !== undefined) wrong.push(`${key}: told SH001, yet order ${row.order_id}`);
      } else {
        wrong.push(`${key}: final ${f.status} ${f.code}`);
      }
    }
    assert.deepEqual(wrong, []);
    const placed = [...finals.values()].filter((f) => f.status === 201 || f.status === 200);
    const books = await one(
      owner,
      `SELECT (SELECT count(*) FROM orders)::int AS orders,
              (SELECT stock FROM product_stock WHERE product_id = $1) AS hot,
              (SELECT stock FROM product_stock WHERE product_id = $2) AS "case",
              (SELECT count(*) FROM shop_check_integrity())::int AS problems`,
      [HOT, CASE],
    );
    assert.deepEqual(books, {
      orders: placed.length, // no order but those told of
      hot: 0,
      case: caseStock - placed.filter((f) => f.productId === CASE).length,
      problems: 0,
    });
    assert.equal(placed.filter((f) => f.productId === HOT).length, HOT_STOCK);
  } finally {
    await shop.stop();
    await owner.end();
  }
});
