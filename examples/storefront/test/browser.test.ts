// The storefront in a real browser (Debian's Chromium, playwright-core),
// against the real server and a real PostgreSQL: each test a shop of its
// own (harness.ts).  What a shopper sees must match what the database
// holds: exactly the orders the stock allows, sold out shown everywhere,
// one order per logical checkout whatever the tabs, the retries and the
// failures.  make test runs it (test/storefront.sh).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { execSync } from "node:child_process";
import type { Browser, BrowserContext, Page } from "playwright-core";
import {
  ROOT, clickAllAt, consoleErrors, createShop, finalOutcome, launchBrowser, one, ownerPool, percentile, startServer,
  watch,
} from "./harness.js";

const HOT = 1; // Flash Sale Smartphone
const EARBUDS = 2;
const CASE = 3;
const CHARGER = 4; // 0 in stock
const SOLD_OUT_TEXT = "Sold out";

let browser: Browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** `n` shoppers, a browser context (its own cookie: its own customer) and a page each */
async function shoppers(url: string, n: number): Promise<{ contexts: BrowserContext[]; pages: Page[] }> {
  const contexts: BrowserContext[] = [];
  const pages: Page[] = [];
  for (let i = 0; i < n; i++) {
    const context = await browser.newContext();
    const page = watch(await context.newPage(), `shopper ${i + 1}`);
    await page.goto(url);
    contexts.push(context);
    pages.push(page);
  }
  // every page hears live stock before the sale starts
  await Promise.all(pages.map((p) => p.waitForFunction(() => document.getElementById("live")!.textContent === "Live stock")));
  return { contexts, pages };
}

const closeAll = (contexts: BrowserContext[]) => Promise.all(contexts.map((c) => c.close()));

const soldOutShown = (page: Page, id: number) =>
  page.waitForFunction(
    (id) => {
      const b = document.querySelector(`#product-${id} button.buy`) as HTMLButtonElement;
      return b.disabled && b.textContent === "Sold out" && document.getElementById(`stock-${id}`)!.textContent === "Sold out";
    },
    id,
    { timeout: 15000 },
  );

test("a sold-out product's button is disabled in the first paint, before any script", async () => {
  const db = createShop("storefront_first_paint");
  const shop = await startServer("storefront_first_paint");
  try {
    const html = await (await fetch(`${shop.url}/`)).text();
    assert.match(html, new RegExp(`<button type="button" class="buy" data-id="${CHARGER}"[^>]* disabled>Sold out</button>`));
    assert.match(html, new RegExp(`<button type="button" class="buy" data-id="${HOT}"[^>]*>Buy now</button>`));
    // a browser without JavaScript: the same page, the same disabled button
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = watch(await context.newPage(), "no-script");
    await page.goto(shop.url);
    assert.equal(await page.isDisabled(`#product-${CHARGER} button.buy`), true);
    assert.equal(await page.isDisabled(`#product-${HOT} button.buy`), false);
    assert.equal(await page.textContent(`#stock-${CHARGER}`), SOLD_OUT_TEXT);
    await context.close();
  } finally {
    await shop.stop();
    await db.end();
  }
});

test("33 shoppers click buy on 20 in stock at once: 20 orders, 13 told why, sold out everywhere", async () => {
  const db = createShop("storefront_sale", 20);
  const shop = await startServer("storefront_sale");
  const { contexts, pages } = await shoppers(shop.url, 33);
  try {
    await clickAllAt(pages, HOT, Date.now() + 1000);
    // a screenshot of the page mid-sale, for the README
    const shot = process.env.STOREFRONT_SCREENSHOT ?? join(ROOT, "test-results", "mid-sale.png");
    const first = await Promise.any(pages.map((p) => finalOutcome(p, HOT).then(() => p)));
    mkdirSync(join(shot, ".."), { recursive: true });
    await first.screenshot({ path: shot, fullPage: true });

    const outcomes = await Promise.all(pages.map((p) => finalOutcome(p, HOT)));
    const placed = outcomes.filter((o) => /^Order #\d+ placed: \$499\.00\.$/.test(o));
    const refused = outcomes.filter(
      (o) => o === "Insufficient stock for Flash Sale Smartphone (available: 0, requested: 1)",
    );
    assert.equal(placed.length, 20, outcomes.join("\n"));
    assert.equal(refused.length, 13, outcomes.join("\n"));
    // every page shows sold out, its button disabled, within a few seconds
    await Promise.all(pages.map((p) => soldOutShown(p, HOT)));

    const books = await one(
      db,
      `SELECT (SELECT count(*) FROM orders)::int AS orders,
              (SELECT count(DISTINCT customer_id) FROM orders)::int AS buyers,
              (SELECT stock FROM product_stock WHERE product_id = $1) AS stock,
              (SELECT count(*) FROM shop_check_integrity())::int AS problems,
              (SELECT extract(epoch FROM max(pg_xact_commit_timestamp(xmin))) * 1000 FROM orders)::float8 AS last_commit`,
      [HOT],
    );
    assert.deepEqual(
      { orders: books.orders, buyers: books.buyers, stock: books.stock, problems: books.problems },
      { orders: 20, buyers: 20, stock: 0, problems: 0 },
    );
    // the pages' order numbers are the database's, each once
    const shown = placed.map((o) => Number(/#(\d+)/.exec(o)![1])).sort((a, b) => a - b);
    const { ids } = await one(db, "SELECT array_agg(id ORDER BY id)::int[] AS ids FROM orders");
    assert.deepEqual(shown, ids);

    const delays = await Promise.all(
      pages.map(async (p) => Number(await p.getAttribute(`#product-${HOT}`, "data-sold-out-at")) - books.last_commit),
    );
    console.log(
      `# sold-out push, last order's commit to each page (33 pages): p50 ${percentile(delays, 50).toFixed(0)} ms, max ${Math.max(...delays).toFixed(0)} ms`,
    );
    const health = await shop.health();
    // one read of the stock serves every page: reads stay a few per second
    console.log(`# stock reads during the test: ${health.stock.reads}, pages connected: ${health.stock.pages}`);
    assert.equal(health.stock.pages, 33);
  } finally {
    await closeAll(contexts);
    await shop.stop();
    await db.end();
  }
});

test("one shopper, 4 tabs, all click at once: one order, every tab shows it, one stream", async () => {
  const db = createShop("storefront_tabs", 20);
  const shop = await startServer("storefront_tabs");
  const context = await browser.newContext();
  try {
    const tabs: Page[] = [];
    for (let i = 0; i < 4; i++) {
      const tab = watch(await context.newPage(), `tab ${i + 1}`);
      await tab.goto(shop.url);
      tabs.push(tab);
    }
    await Promise.all(tabs.map((t) => t.waitForFunction(() => document.getElementById("live")!.textContent === "Live stock")));
    assert.equal((await shop.health()).stock.pages, 1, "the tabs share one event stream");

    await clickAllAt(tabs, HOT, Date.now() + 500);
    const outcomes = await Promise.all(tabs.map((t) => finalOutcome(t, HOT)));
    const ids = outcomes.map((o) => /^Order #(\d+) placed/.exec(o)?.[1]);
    assert.ok(ids.every((id) => id !== undefined && id === ids[0]), outcomes.join("\n"));
    const books = await one(db, "SELECT count(*)::int AS orders, sum(i.quantity)::int AS units FROM orders JOIN order_items AS i ON i.order_id = orders.id");
    assert.deepEqual(books, { orders: 1, units: 1 });
    const { stock } = await one(db, "SELECT stock FROM product_stock WHERE product_id = $1", [HOT]);
    assert.equal(stock, 19);
    // a reload sends nothing new: the checkout it finished is done
    await tabs[0].reload();
    await tabs[0].waitForFunction(() => document.getElementById("live")!.textContent === "Live stock");
    assert.equal((await one(db, "SELECT count(*)::int AS n FROM orders")).n, 1);
  } finally {
    await context.close();
    await shop.stop();
    await db.end();
  }
});

test("the listening backend killed mid-sale: every page converges to the right stock", async () => {
  const db = createShop("storefront_listener", 20);
  const shop = await startServer("storefront_listener");
  const { contexts, pages } = await shoppers(shop.url, 5);
  try {
    const listener = async () =>
      (await one(db, "SELECT pid FROM pg_stat_activity WHERE application_name = 'storefront stock listener' AND datname = current_database()"))?.pid;
    const killed = await listener();
    assert.ok(killed, "a listener backend is there");
    await clickAllAt(pages.slice(0, 2), HOT, Date.now() + 200);
    await one(db, "SELECT pg_terminate_backend($1)", [killed]);
    // stock moved while nobody listens: counted to 0 by the back office ...
    await one(db, "SELECT shop_adjust_stock($1, 0, 'stock count')", [HOT]);
    await Promise.all(pages.map((p) => soldOutShown(p, HOT)));
    // ... and back with a delivery of 4
    await one(db, "SELECT shop_restock($1, 4, 'delivery')", [HOT]);
    await Promise.all(
      pages.map((p) =>
        p.waitForFunction(
          (id) =>
            document.getElementById(`stock-${id}`)!.textContent === "Only 4 left" &&
            !(document.querySelector(`#product-${id} button.buy`) as HTMLButtonElement).disabled,
          HOT,
          { timeout: 15000 },
        ),
      ),
    );
    const health = await shop.health();
    assert.ok(health.stock.reconnects >= 1 && health.stock.listening, JSON.stringify(health.stock));
    const now = await listener();
    assert.ok(now && now !== killed, "a new listener backend");
    assert.equal((await one(db, "SELECT count(*)::int AS n FROM shop_check_integrity()")).n, 0);
  } finally {
    await closeAll(contexts);
    await shop.stop();
    await db.end();
  }
});

test("lock timeouts on the hot product: pages retry with their keys, one order each", async () => {
  const db = createShop("storefront_locks", 20);
  const shop = await startServer("storefront_locks");
  const { contexts, pages } = await shoppers(shop.url, 6);
  const holder = await db.connect();
  try {
    // the back office holds the product's row for 3 s as a restock or a
    // checkout does (FOR NO KEY UPDATE); checkout.lock_timeout is 1 s
    await holder.query("BEGIN");
    await holder.query("SELECT * FROM products WHERE id = $1 FOR NO KEY UPDATE", [HOT]);
    await clickAllAt(pages, HOT, Date.now() + 200);
    await new Promise((r) => setTimeout(r, 3000));
    await holder.query("COMMIT");
    const outcomes = await Promise.all(pages.map((p) => finalOutcome(p, HOT)));
    assert.ok(outcomes.every((o) => /^Order #\d+ placed/.test(o)), outcomes.join("\n"));
    const tries = await Promise.all(pages.map(async (p) => Number(await p.getAttribute(`#product-${HOT}`, "data-tries"))));
    assert.ok(Math.max(...tries) > 1, `some page retried (tries: ${tries})`);
    assert.ok((await shop.health()).checkouts.retryLater >= 1);
    const books = await one(
      db,
      `SELECT count(*)::int AS orders, count(DISTINCT customer_id)::int AS buyers,
              (SELECT stock FROM product_stock WHERE product_id = $1) AS stock FROM orders`,
      [HOT],
    );
    assert.deepEqual(books, { orders: 6, buyers: 6, stock: 14 });
    console.log(`# lock timeouts: tries per page ${tries.join(", ")}`);
  } finally {
    holder.release();
    await closeAll(contexts);
    await shop.stop();
    await db.end();
  }
});

test("the database stopped mid-sale: the breaker opens, pages say try again, nothing lost", async () => {
  const ctl = process.env.STOREFRONT_PG_CTL;
  assert.ok(ctl, "STOREFRONT_PG_CTL names the cluster's pg_ctlcluster");
  const db = createShop("storefront_outage", 20);
  const shop = await startServer("storefront_outage", { BREAKER_RESET_MS: "3000" });
  const { contexts, pages } = await shoppers(shop.url, 6);
  const acknowledged: number[] = [];
  try {
    await clickAllAt(pages.slice(0, 3), EARBUDS, Date.now() + 200);
    for (const p of pages.slice(0, 3)) {
      const o = await finalOutcome(p, EARBUDS);
      acknowledged.push(Number(/^Order #(\d+) placed/.exec(o)![1]));
    }
    await db.end();
    execSync(`${ctl} stop -m fast`);
    await clickAllAt(pages.slice(3), EARBUDS, Date.now() + 200);
    // while it is down: the breaker opens, each page ends in "try again"
    let opened = false;
    const deadline = Date.now() + 30000;
    while (!opened && Date.now() < deadline) {
      opened = (await shop.health()).breaker !== "closed";
      if (!opened) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(opened, "the breaker opened");
    for (const p of pages.slice(3)) {
      const o = await finalOutcome(p, EARBUDS);
      assert.match(o, /press "Try again"/);
      assert.equal(await p.textContent(`#product-${EARBUDS} button.buy`), "Try again");
      assert.equal(await p.isDisabled(`#product-${EARBUDS} button.buy`), false);
    }
    execSync(`${ctl} start`);
    // "Try again": the same checkout, the same key
    const retried: number[] = [];
    for (const p of pages.slice(3)) {
      await p.click(`#product-${EARBUDS} button.buy`);
    }
    for (const p of pages.slice(3)) {
      await p.waitForFunction(
        (id) => /^Order #\d+ placed/.test(document.getElementById(`outcome-${id}`)!.textContent ?? ""),
        EARBUDS,
        { timeout: 30000 },
      );
      retried.push(Number(/#(\d+)/.exec((await p.textContent(`#outcome-${EARBUDS}`))!)![1]));
    }
    const after = ownerPool("storefront_outage");
    try {
      const books = await one(
        after,
        `SELECT count(*)::int AS orders, count(DISTINCT customer_id)::int AS buyers,
                array_agg(id ORDER BY id)::int[] AS ids,
                (SELECT stock FROM product_stock WHERE product_id = $1) AS stock,
                (SELECT count(*) FROM shop_check_integrity())::int AS problems FROM orders`,
        [EARBUDS],
      );
      assert.deepEqual(
        { orders: books.orders, buyers: books.buyers, stock: books.stock, problems: books.problems },
        { orders: 6, buyers: 6, stock: 194, problems: 0 },
      );
      assert.deepEqual([...acknowledged, ...retried].sort((a, b) => a - b), books.ids);
    } finally {
      await after.end();
    }
  } finally {
    execSync(`${ctl} start 2>/dev/null || true`);
    await closeAll(contexts);
    await shop.stop();
  }
});

test("a bundle's part sold out through another product's checkout: the bundle sold out in every page, back with the part", async () => {
  const db = createShop("storefront_bundles", 20);
  // Gift Wrap, 1 in stock, the part of two bundles
  const wrap = Number((await one(db, "INSERT INTO products (name, price_cents, stock) VALUES ('Gift Wrap', 300, 1) RETURNING id")).id);
  const bundle = async (name: string, cents: number, parts: [number, number][]) =>
    Number(
      (await one(db, "SELECT shop_create_bundle($1, $2, $3) AS id", [
        name,
        cents,
        JSON.stringify(parts.map(([product_id, quantity]) => ({ product_id, quantity }))),
      ])).id,
    );
  const box = await bundle("Gift Box", 9900, [[EARBUDS, 1], [wrap, 1]]);
  const kit = await bundle("Case Kit", 2900, [[CASE, 1], [wrap, 1]]);
  // what the database announces on checkout_stock (the server's notifier runs shop_notify_stock_changes())
  const listener = await db.connect();
  const heard: { product_id: number; state: string }[] = [];
  listener.on("notification", (n) => heard.push(JSON.parse(n.payload ?? "{}")));
  await listener.query("LISTEN checkout_stock");
  const statesOf = (id: number) => heard.filter((n) => n.product_id === id).map((n) => n.state);
  const announced = async (id: number, states: string[]) => {
    for (let i = 0; i < 300 && statesOf(id).length < states.length; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(statesOf(id), states, `heard for product ${id}`);
  };
  const backShown = (page: Page, id: number, text: string) =>
    page.waitForFunction(
      ({ id, text }) =>
        document.getElementById(`stock-${id}`)!.textContent === text &&
        !(document.querySelector(`#product-${id} button.buy`) as HTMLButtonElement).disabled,
      { id, text },
      { timeout: 15000 },
    );
  const shop = await startServer("storefront_bundles");
  const { contexts, pages } = await shoppers(shop.url, 2);
  try {
    // a bundle is listed like any product, saying what it holds
    assert.equal(await pages[1].textContent(`#parts-${box}`), "Bundle: Wireless Earbuds + Gift Wrap");
    assert.equal(await pages[1].textContent(`#stock-${box}`), "Only 1 left");

    // shopper 1 buys the Case Kit, whose Gift Wrap was the last: the Gift
    // Box, never bought, goes sold out on both pages with the wrap and the kit
    await pages[0].click(`#product-${kit} button.buy`);
    assert.match(await finalOutcome(pages[0], kit), /^Order #\d+ placed: \$29\.00\.$/);
    await Promise.all(pages.flatMap((p) => [box, kit, wrap].map((id) => soldOutShown(p, id))));
    await announced(box, ["sold_out"]);

    // the wrap restocked from the back office: both bundles come back on both pages
    await one(db, "SELECT shop_restock($1, 1, 'delivery')", [wrap]);
    await Promise.all(pages.flatMap((p) => [box, kit, wrap].map((id) => backShown(p, id, "Only 1 left"))));
    await announced(box, ["sold_out", "back_in_stock"]);

    // shopper 2 buys the wrap on its own: both bundles sold out again
    await pages[1].click(`#product-${wrap} button.buy`);
    assert.match(await finalOutcome(pages[1], wrap), /^Order #\d+ placed: \$3\.00\.$/);
    await Promise.all(pages.flatMap((p) => [box, kit].map((id) => soldOutShown(p, id))));
    await announced(box, ["sold_out", "back_in_stock", "sold_out"]);
    await announced(kit, ["sold_out", "back_in_stock", "sold_out"]);

    const books = await one(
      db,
      `SELECT (SELECT count(*) FROM orders)::int AS orders,
              (SELECT stock FROM product_stock WHERE product_id = $1) AS wrap,
              (SELECT count(*) FROM shop_check_integrity())::int AS problems`,
      [wrap],
    );
    assert.deepEqual(books, { orders: 2, wrap: 0, problems: 0 });
  } finally {
    listener.release();
    await closeAll(contexts);
    await shop.stop();
    await db.end();
  }
});

test("no page logged a console error or threw", () => {
  assert.deepEqual(consoleErrors, []);
});
