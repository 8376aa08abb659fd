// The storefront's HTTP server (Fastify 5): the page, its API, and the
// live stock stream.
//
//   GET  /                      the page, rendered with the stock of now:
//                               a sold-out product's button is disabled in
//                               the first paint, before any script runs
//   POST /api/session           a shopper (a row of customers) and its cookie
//   GET  /api/products          every product with its stock on sale
//   GET  /api/cart              the cart as shop_cart_status() shows it
//   PUT  /api/cart              {lines: [{productId, quantity}]}: set the cart
//   POST /api/checkout          Idempotency-Key: ...; {lines?}: check out
//   GET  /api/orders/latest     the shopper's latest order
//   GET  /api/stock/events      Server-Sent Events: snapshot, sold_out,
//                               back_in_stock, stock (low stock), product
//   GET  /api/health            the pool, the breaker and the stock listener
//
// A shopper is a signed cookie holding a customer id: the example's
// stand-in for the shop's own sign-in.  The server connects as a role given
// shop_grant_app() (and INSERT on customers, for sign-up).
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Pool } from "pg";
import { checkoutBreaker, parseKey, parseLines, placeOrder, setCart, type Line } from "./checkout.js";
import { INTERNAL, errorOutcome, retryLater, type Outcome } from "./outcomes.js";
import { renderPage } from "./page.js";
import type { StockHub } from "./stock.js";

const PUBLIC = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "public");
const ASSETS: Record<string, string> = {
  "/app.js": "text/javascript; charset=utf-8",
  "/stock-worker.js": "text/javascript; charset=utf-8",
  "/style.css": "text/css; charset=utf-8",
};

export type ServerOptions = {
  pool: Pool;
  hub: StockHub;
  cookieSecret?: string;
  breaker?: { resetTimeout?: number; volumeThreshold?: number; timeout?: number };
  logger?: boolean;
};

export function buildServer({ pool, hub, cookieSecret, breaker: breakerOptions, logger = false }: ServerOptions): FastifyInstance {
  const app = Fastify({ logger, bodyLimit: 64 * 1024 });
  const secret = cookieSecret ?? randomBytes(32).toString("hex");
  const breaker = checkoutBreaker(pool, breakerOptions);
  const assets = Object.fromEntries(
    Object.keys(ASSETS).map((path) => [path, readFileSync(join(PUBLIC, path.slice(1)), "utf8")]),
  );
  const streams = new Set<import("node:http").ServerResponse>();
  app.addHook("preClose", async () => {
    for (const res of streams) res.end();
  });
  const counts = { placed: 0, replayed: 0, refused: 0, retryLater: 0 };

  const sign = (id: number) => createHmac("sha256", secret).update(String(id)).digest("base64url");
  function customerOf(req: FastifyRequest): number | null {
    const m = /(?:^|;\s*)shopper=(\d+)\.([\w-]+)/.exec(req.headers.cookie ?? "");
    if (m === null) return null;
    const want = Buffer.from(sign(Number(m[1])));
    const got = Buffer.from(m[2]);
    return want.length === got.length && timingSafeEqual(want, got) ? Number(m[1]) : null;
  }
  async function newShopper(reply: FastifyReply): Promise<number> {
    const { rows } = await pool.query("INSERT INTO customers (name) VALUES ('Shopper') RETURNING id");
    const id = Number(rows[0].id);
    reply.header("set-cookie", `shopper=${id}.${sign(id)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000`);
    return id;
  }
  function send(reply: FastifyReply, o: Outcome) {
    for (const [k, v] of Object.entries(o.headers ?? {})) reply.header(k, v);
    return reply.code(o.status).send(o.body);
  }
  const noSession = (reply: FastifyReply) =>
    send(reply, { status: 401, body: { code: "no_session", message: "Your session has ended: reload the page." } });
  /** An error as the client sees it; the unexpected ones are logged, never sent */
  function failure(req: FastifyRequest, e: unknown): Outcome {
    const o = errorOutcome(e);
    if (o !== null) return o;
    req.log.error({ err: e }, "unexpected error");
    if (!logger) console.error("storefront: unexpected error:", (e as Error)?.message);
    return INTERNAL;
  }

  app.setErrorHandler((error: { statusCode?: number }, req, reply) => {
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return send(reply, { status: 400, body: { code: "bad_request", message: "Send a JSON body." } });
    }
    return send(reply, failure(req, error));
  });

  app.get("/", async (req, reply) => {
    const customerId = customerOf(req) ?? (await newShopper(reply));
    reply.header("cache-control", "no-store");
    return reply.type("text/html; charset=utf-8").send(renderPage(hub.snapshot(), customerId, hub.lowStock));
  });
  for (const [path, type] of Object.entries(ASSETS)) {
    app.get(path, async (_req, reply) => reply.type(type).header("cache-control", "no-cache").send(assets[path]));
  }

  app.post("/api/session", async (req, reply) => {
    const customerId = customerOf(req) ?? (await newShopper(reply));
    return { customerId };
  });

  app.get("/api/products", async () => ({ products: hub.snapshot() }));

  app.get("/api/cart", async (req, reply) => {
    const customerId = customerOf(req);
    if (customerId === null) return noSession(reply);
    try {
      const { rows } = await pool.query(
        `SELECT product_id, name, requested, available, can_fulfil, checkout_would_succeed
           FROM shop_cart_status($1)`,
        [customerId],
      );
      return {
        lines: rows.map((r) => ({
          productId: Number(r.product_id),
          name: r.name,
          quantity: r.requested,
          available: r.available,
          canFulfil: r.can_fulfil,
        })),
        checkoutWouldSucceed: rows.length > 0 && rows.every((r) => r.checkout_would_succeed),
      };
    } catch (e) {
      return send(reply, failure(req, e));
    }
  });

  app.put("/api/cart", async (req, reply) => {
    const customerId = customerOf(req);
    if (customerId === null) return noSession(reply);
    let client;
    try {
      const lines: Line[] = parseLines((req.body as { lines?: unknown })?.lines);
      client = await pool.connect();
      await client.query("BEGIN");
      await setCart(client, customerId, lines);
      await client.query("COMMIT");
      return { lines };
    } catch (e) {
      await client?.query("ROLLBACK").catch(() => {});
      return send(reply, failure(req, e));
    } finally {
      client?.release();
    }
  });

  app.post("/api/checkout", async (req, reply) => {
    const customerId = customerOf(req);
    if (customerId === null) return noSession(reply);
    try {
      const key = parseKey(req.headers["idempotency-key"]);
      const body = req.body as { lines?: unknown } | undefined;
      const lines = body?.lines === undefined ? null : parseLines(body.lines);
      const { order, replayed } = await breaker.fire(customerId, key, lines);
      if (replayed) {
        counts.replayed++;
        reply.header("idempotent-replayed", "true");
        return reply.code(200).send({ order });
      }
      counts.placed++;
      hub.refresh(); // stock moved: every page hears of it within a read
      return reply.code(201).send({ order });
    } catch (e) {
      const code = (e as { code?: string }).code;
      const o =
        code === "EOPENBREAKER"
          ? retryLater("unavailable", "Checkout is unavailable for a moment: please try again.", breakerRemaining())
          : failure(req, e);
      if (o.status === 503) counts.retryLater++;
      else counts.refused++;
      return send(reply, o);
    }
  });
  let openedAt = 0;
  breaker.on("open", () => (openedAt = Date.now()));
  const breakerRemaining = () =>
    Math.max(1, ((breakerOptions?.resetTimeout ?? 3000) - (Date.now() - openedAt)) / 1000);

  app.get("/api/orders/latest", async (req, reply) => {
    const customerId = customerOf(req);
    if (customerId === null) return noSession(reply);
    try {
      const { rows } = await pool.query(
        "SELECT id, status, total_cents FROM orders WHERE customer_id = $1 ORDER BY id DESC LIMIT 1",
        [customerId],
      );
      if (rows.length === 0) return reply.code(404).send({ code: "no_order", message: "No order yet." });
      return { order: { id: Number(rows[0].id), status: rows[0].status, totalCents: Number(rows[0].total_cents) } };
    } catch (e) {
      return send(reply, failure(req, e));
    }
  });

  app.get("/api/stock/events", (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write("retry: 1000\n\n");
    const unsubscribe = hub.subscribe((event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
    const ping = setInterval(() => res.write(": ping\n\n"), 15000);
    streams.add(res);
    req.raw.on("close", () => {
      clearInterval(ping);
      unsubscribe();
      streams.delete(res);
    });
  });

  app.get("/api/health", async () => ({
    breaker: breaker.opened ? "open" : breaker.halfOpen ? "half-open" : "closed",
    pool: { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount },
    stock: { listening: hub.listening, pages: hub.pageCount, ...hub.stats },
    checkouts: counts,
  }));

  return app;
}
