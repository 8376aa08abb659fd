// The storefront's HTTP server (Fastify 5), built as Fastify's guides
// show: build() makes the instance, decorates it with the services every
// route shares (the data module, the guarded checkout, the stock hub, the
// sessions) and registers the routes, one plugin per file under routes/;
// main.ts listens, tests call build() and drive it with app.inject().
//
//   GET  /                      the page (routes/page.ts)
//   POST /api/session           a shopper and its cookie (routes/session.ts)
//   GET  /api/products          every product with its stock on sale
//   GET  /api/stock/events      Server-Sent Events (routes/stock.ts)
//   GET  /api/cart, PUT /api/cart   the stored cart (routes/cart.ts)
//   POST /api/checkout          Idempotency-Key; {lines, voucherCode?} (routes/checkout.ts)
//   GET  /api/orders/latest     the shopper's latest order (routes/orders.ts)
//   GET  /api/health            breaker, pool, stock listener, counters (routes/health.ts)
//
// Errors: a route throws; the error handler here answers through
// outcomes.ts (the table of docs/reference.md, "SQLSTATEs over HTTP"), and
// logs, never sends, what the table does not know (500 "internal").
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Pool } from "pg";
import { checkoutBreaker, type BreakerOptions, type GuardedCheckout } from "./breaker.js";
import { ShopData } from "./db.js";
import { BadRequestError, INTERNAL, errorOutcome, type Outcome } from "./outcomes.js";
import { Sessions } from "./session.js";
import type { StockHub } from "./stock.js";
import cart from "./routes/cart.js";
import checkout from "./routes/checkout.js";
import health from "./routes/health.js";
import orders from "./routes/orders.js";
import page from "./routes/page.js";
import session from "./routes/session.js";
import stock from "./routes/stock.js";

export type Counts = { placed: number; replayed: number; refused: number; retryLater: number; internal: number };

declare module "fastify" {
  interface FastifyInstance {
    shop: ShopData;
    checkout: GuardedCheckout;
    hub: StockHub;
    sessions: Sessions;
    counts: Counts;
    /** onRequest hook of the routes that need a shopper: 401 without one */
    requireShopper(req: FastifyRequest): Promise<void>;
  }
  interface FastifyRequest {
    customerId: number;
  }
  interface FastifyReply {
    outcome(o: Outcome): FastifyReply;
  }
}

export type BuildOptions = {
  pool: Pool;
  hub: StockHub;
  cookieSecret?: string;
  breaker?: BreakerOptions;
  logger?: boolean;
};

/** A request's validation error as the API's 400 codes */
function invalid(error: FastifyError): BadRequestError {
  if (error.validationContext === "headers") {
    const missing = error.validation?.some((v) => v.keyword === "required");
    return missing
      ? new BadRequestError(
          "idempotency_key_required",
          "Send an Idempotency-Key header: one per checkout, the same on every retry of it.",
        )
      : new BadRequestError("idempotency_key_invalid", "The Idempotency-Key must be 1 to 255 characters long.");
  }
  const path = error.validation?.[0]?.instancePath ?? "";
  const params = (error.validation?.[0]?.params ?? {}) as { missingProperty?: string };
  if (path.startsWith("/lines") || params.missingProperty === "lines") {
    return new BadRequestError("bad_lines", "Send 1 to 50 lines of {productId, quantity}, quantities from 1 to 1000.");
  }
  return new BadRequestError("bad_request", `The request's ${error.validationContext ?? "body"} is not valid: ${error.message}.`);
}

export function build({ pool, hub, cookieSecret, breaker, logger = false }: BuildOptions): FastifyInstance {
  const app = Fastify({ logger, bodyLimit: 64 * 1024 });
  const shop = new ShopData(pool);
  app.decorate("shop", shop);
  app.decorate("checkout", checkoutBreaker(shop, breaker));
  app.decorate("hub", hub);
  app.decorate("sessions", new Sessions(cookieSecret));
  app.decorate("counts", { placed: 0, replayed: 0, refused: 0, retryLater: 0, internal: 0 });
  app.decorateRequest("customerId", 0);
  app.decorateReply("outcome", function (this: FastifyReply, o: Outcome) {
    if (o.headers) this.headers(o.headers);
    return this.code(o.status).send(o.body);
  });
  app.decorate("requireShopper", async function (req: FastifyRequest) {
    const id = app.sessions.customerOf(req.headers.cookie);
    if (id === null) throw new BadRequestError("no_session", "Your session has ended: reload the page.", 401);
    req.customerId = id;
  });

  app.setErrorHandler((error: FastifyError, req, reply) => {
    let o: Outcome | null;
    if (error.validation) o = errorOutcome(invalid(error));
    else if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 && error.code?.startsWith("FST_")) {
      o = { status: 400, body: { code: "bad_request", message: "Send a JSON body." } }; // not JSON, too large, no content type
    } else o = errorOutcome(error);
    if (o === null) {
      app.counts.internal++;
      req.log.error({ err: error }, "unexpected error");
      if (!logger) console.error("storefront: unexpected error:", error?.message);
      o = INTERNAL;
    }
    return reply.outcome(o);
  });

  app.register(page);
  app.register(session);
  app.register(stock);
  app.register(cart);
  app.register(checkout);
  app.register(orders);
  app.register(health);
  return app;
}
