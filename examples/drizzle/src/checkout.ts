// The flash-sale checkout route of a shop on Drizzle ORM: one statement,
// SELECT shop_checkout(customer_id, idempotency_key, voucher_code), and every
// SQLSTATE the extension documents mapped to the HTTP response a shop shows.
// A voucher code is optional (NULL: none); a code refused never falls back
// to full price here: the buyer sees why and may check out without it.  The
// route calls through a circuit breaker (checkoutBreaker): while the
// database is down it answers 503 at once.
//
// The storefront connects as a role given shop_grant_app(): it can check
// out, pay and show carts, read products and orders, and write carts, and
// nothing else.  The idempotency key identifies one checkout attempt (the
// browser makes it when the buyer presses "buy"); every retry of that
// attempt sends the same key, so a retry after a lost connection or a
// timeout returns the order the first call made, never a second one.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import CircuitBreaker from "opossum";
import { sql } from "drizzle-orm";
import type { NodePgDatabase } from "drizzle-orm/node-postgres";

export type CheckoutResponse = {
  status: number;
  body: Record<string, unknown>;
};

// The PostgreSQL error behind a failed query: drizzle wraps driver errors
// (DrizzleQueryError) and keeps the driver's error as `cause`
type PgError = { code?: string; message?: string; detail?: string; hint?: string };
function pgError(e: unknown): PgError {
  let err = e as PgError & { cause?: unknown };
  while (err && err.code === undefined && err.cause !== undefined) {
    err = err.cause as PgError & { cause?: unknown };
  }
  return err ?? {};
}

// Errors worth calling again with the same key: a lock wait past
// checkout.lock_timeout, a serialization failure, a deadlock, and a
// connection lost mid-call (the order may or may not exist: the key tells)
const RETRYABLE = new Set(["55P03", "40001", "40P01", "08000", "08003", "08006", "57P01"]);

type CheckoutOptions = { attempts?: number; baseDelayMs?: number; voucherCode?: string | null };

/**
 * Call shop_checkout for the cart of `customerId` as attempt
 * `idempotencyKey`, with the voucher code the buyer typed if any, retrying
 * with the same key (jittered backoff) while the database says to; returns
 * the order id, or throws the last error.
 */
export async function runCheckout(
  db: NodePgDatabase,
  customerId: number,
  idempotencyKey: string,
  { attempts = 5, baseDelayMs = 20, voucherCode = null }: CheckoutOptions = {},
): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await db.execute<{ order_id: string }>(
        sql`SELECT shop_checkout(${customerId}::bigint, ${idempotencyKey}::text,
                                 ${voucherCode}::text) AS order_id`,
      );
      return Number(result.rows[0].order_id);
    } catch (e) {
      const err = pgError(e);
      if (err.code !== undefined && RETRYABLE.has(err.code) && attempt < attempts) {
        await sleep(baseDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random()));
        continue;
      }
      throw e;
    }
  }
}

/** The same, answered as the route answers: 201 and the order, or the error's response */
export async function checkout(
  db: NodePgDatabase,
  customerId: number,
  idempotencyKey: string,
  options: CheckoutOptions = {},
): Promise<CheckoutResponse> {
  try {
    return { status: 201, body: { orderId: await runCheckout(db, customerId, idempotencyKey, options) } };
  } catch (e) {
    return respond(pgError(e));
  }
}

// The shop saying no, or the caller's mistake: the database is well, and a
// circuit breaker must not count them (a crowd told "sold out" never opens it)
function isBusinessError(e: unknown): boolean {
  const code = pgError(e).code ?? "";
  return code.startsWith("SH") || code.startsWith("22") || code === "42501";
}

/**
 * A circuit breaker (opossum) around runCheckout: when calls fail because
 * the database refuses connections, drops them or times out (half of them
 * over at least `volumeThreshold` calls), it opens and the route answers
 * 503 at once instead of piling requests onto a dying server; after
 * `resetTimeout` ms one trial call goes through, and a success closes it.
 * Business errors (SH0xx, 22xxx, 42501) never count as failures.
 */
export function checkoutBreaker(
  db: NodePgDatabase,
  { timeout = 10000, resetTimeout = 5000, volumeThreshold = 5, errorThresholdPercentage = 50 } = {},
) {
  return new CircuitBreaker(
    (customerId: number, idempotencyKey: string, options: CheckoutOptions) =>
      runCheckout(db, customerId, idempotencyKey, options),
    { timeout, resetTimeout, volumeThreshold, errorThresholdPercentage, errorFilter: isBusinessError },
  );
}

/** A checkout through the breaker: 503 at once while it is open */
export async function guardedCheckout(
  breaker: ReturnType<typeof checkoutBreaker>,
  customerId: number,
  idempotencyKey: string,
  options: CheckoutOptions = {},
): Promise<CheckoutResponse> {
  try {
    return { status: 201, body: { orderId: await breaker.fire(customerId, idempotencyKey, options) } };
  } catch (e) {
    if (breaker.opened || (e as { code?: string }).code === "EOPENBREAKER") {
      return {
        status: 503,
        body: { error: "unavailable", message: "Checkout is unavailable for a moment: please try again." },
      };
    }
    return respond(pgError(e));
  }
}

// The response a shop shows for each documented SQLSTATE
function respond(err: PgError): CheckoutResponse {
  const lines = (err.detail ?? "").split("\n").filter((l) => l.length > 0);
  switch (err.code) {
    case "SH001": // sold out: the message names the first short line, DETAIL every one
      return { status: 409, body: { error: "insufficient_stock", message: err.message, lines } };
    case "SH005": // past a purchase limit
      return { status: 409, body: { error: "purchase_limit", message: err.message, lines } };
    case "SH009": // the code: unknown, not valid yet, expired, used, or the cart too small
      return { status: 422, body: { error: "voucher_invalid", message: err.message } };
    case "SH010": // the voucher's uses are all taken: check out without it, or not at all
      return { status: 409, body: { error: "voucher_used_up", message: err.message } };
    case "SH011": // this buyer has used it as often as it allows
      return { status: 409, body: { error: "voucher_customer_limit", message: err.message } };
    case "SH002":
      return { status: 400, body: { error: "empty_cart", message: "Your cart is empty." } };
    case "SH003":
      return { status: 404, body: { error: "unknown_customer", message: err.message } };
    case "22023":
    case "22004":
      return { status: 400, body: { error: "bad_request", message: err.message } };
    case "55P03":
    case "40001":
    case "40P01":
    case "08000":
    case "08003":
    case "08006":
    case "57P01":
    case "ECONNREFUSED":
    case "ECONNRESET":
      return {
        status: 503,
        body: { error: "busy", message: "The shop is very busy: please try again in a moment." },
      };
    default:
      return { status: 500, body: { error: "internal", message: "Something went wrong." } };
  }
}

// POST /checkout {"customerId": 1, "idempotencyKey": "...", "voucherCode": "FLASH20"}
export function checkoutServer(db: NodePgDatabase): Server {
  const breaker = checkoutBreaker(db);
  return createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let response: CheckoutResponse;
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const { customerId, idempotencyKey, voucherCode } = JSON.parse(
        Buffer.concat(chunks).toString("utf8"),
      );
      response =
        req.method === "POST" && req.url === "/checkout"
          ? await guardedCheckout(breaker, Number(customerId), String(idempotencyKey), {
              voucherCode: voucherCode == null ? null : String(voucherCode),
            })
          : { status: 404, body: { error: "not_found" } };
    } catch {
      response = { status: 400, body: { error: "bad_request", message: "Send JSON." } };
    }
    res.writeHead(response.status, { "content-type": "application/json" });
    res.end(JSON.stringify(response.body));
  });
}
