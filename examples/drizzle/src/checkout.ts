// The flash-sale checkout route of a shop on Drizzle ORM: one statement,
// SELECT * FROM shop_place_order(customer_id, lines, idempotency_key,
// voucher_code), in autocommit, and every outcome answered as
// docs/reference.md's "SQLSTATEs over HTTP" says (src/outcomes.ts).  The
// call sets the customer's cart to the request's lines and checks it out;
// it says whether this call placed the order or an earlier call with the key
// did, and gives a refusal (sold out, a limit, a voucher) as data.  A voucher
// code refused never falls back to full price here: the buyer sees why and
// may check out without it.  The route calls through a circuit breaker
// (checkoutBreaker): while the database is down it answers 503 at once.
//
// The storefront connects as a role given shop_grant_app().  The
// idempotency key identifies one checkout attempt (the browser makes it when
// the buyer presses "buy") and comes in the Idempotency-Key header; every
// retry of that attempt sends the same key, so a retry after a lost
// connection or a timeout returns the order the first call made, never a
// second one, and the same key with other lines is refused (SH015, 422).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import CircuitBreaker from "opossum";
import { sql } from "drizzle-orm";
import type { NodePgDatabase } from "drizzle-orm/node-postgres";
import { errorResponse, refused, retryLater, sqlstateOf, unavailable, type CheckoutResponse } from "./outcomes.js";

export type { CheckoutResponse } from "./outcomes.js";

export type Line = { productId: number; quantity: number };

export type Order = {
  id: number;
  status: string;
  totalCents: number;
  discountCents: number;
  paymentDeadline: string | null;
  lines: { productId: number; name: string; quantity: number; unitPriceCents: number; discountCents: number; preorderedQuantity: number }[];
};

export type Outcome =
  | { outcome: "placed" | "replayed"; order: Order }
  | { outcome: "refused"; sqlstate: string; message: string; refusal: unknown };

type Row = {
  outcome: "placed" | "replayed" | "refused";
  order_id: string | null;
  status: string | null;
  total_cents: string | null;
  discount_cents: string | null;
  payment_deadline: string | Date | null;
  order_lines: Record<string, string | number>[] | null;
  sqlstate: string | null;
  message: string | null;
  refusal: unknown;
};

// Worth calling again at once with the same key: a lock wait past
// checkout.lock_timeout, a serialization failure, a deadlock, and the
// database out of reach (a connection lost mid-call may have placed the
// order: the key tells)
const RETRYABLE = new Set(["55P03", "40001", "40P01"]);
const retryable = (e: unknown) => RETRYABLE.has(sqlstateOf(e)) || unavailable(e);

type CheckoutOptions = { attempts?: number; baseDelayMs?: number; voucherCode?: string | null };

/** One call of shop_place_order: the order (placed or replayed) or the refusal */
async function placeOrder(db: NodePgDatabase, customerId: number, lines: Line[], key: string, voucherCode: string | null): Promise<Outcome> {
  const json = JSON.stringify(lines.map((l) => ({ product_id: l.productId, quantity: l.quantity })));
  const result = await db.execute<Row>(
    sql`SELECT * FROM shop_place_order(${customerId}::bigint, ${json}::jsonb, ${key}::text, ${voucherCode}::text)`,
  );
  const r = result.rows[0];
  if (r.outcome === "refused") return { outcome: "refused", sqlstate: r.sqlstate!, message: r.message!, refusal: r.refusal };
  return {
    outcome: r.outcome,
    order: {
      id: Number(r.order_id),
      status: r.status!,
      totalCents: Number(r.total_cents),
      discountCents: Number(r.discount_cents),
      paymentDeadline: r.payment_deadline === null ? null : new Date(r.payment_deadline).toISOString(),
      lines: (r.order_lines ?? []).map((l) => ({
        productId: Number(l.product_id),
        name: String(l.name),
        quantity: Number(l.quantity),
        unitPriceCents: Number(l.unit_price_cents),
        discountCents: Number(l.discount_cents),
        preorderedQuantity: Number(l.preordered_quantity),
      })),
    },
  };
}

/**
 * Check out `lines` for `customerId` as attempt `idempotencyKey`, with the
 * voucher code the buyer typed if any, retrying with the same key (jittered
 * backoff) while the database says to; returns the outcome, or throws the
 * last error.
 */
export async function runCheckout(
  db: NodePgDatabase,
  customerId: number,
  lines: Line[],
  idempotencyKey: string,
  { attempts = 5, baseDelayMs = 20, voucherCode = null }: CheckoutOptions = {},
): Promise<Outcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await placeOrder(db, customerId, lines, idempotencyKey, voucherCode);
    } catch (e) {
      if (retryable(e) && attempt < attempts) {
        await sleep(baseDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random()));
        continue;
      }
      throw e;
    }
  }
}

/** An outcome as the route answers it */
export function respond(o: Outcome): CheckoutResponse {
  switch (o.outcome) {
    case "placed":
      return { status: 201, body: { outcome: "placed", order: o.order } };
    case "replayed":
      return { status: 200, headers: { "idempotent-replayed": "true" }, body: { outcome: "replayed", order: o.order } };
    case "refused":
      return refused(o.sqlstate, o.message, o.refusal);
  }
}

/** The same, answered as the route answers: the outcome's response, or the error's */
export async function checkout(
  db: NodePgDatabase,
  customerId: number,
  lines: Line[],
  idempotencyKey: string,
  options: CheckoutOptions = {},
): Promise<CheckoutResponse> {
  try {
    return respond(await runCheckout(db, customerId, lines, idempotencyKey, options));
  } catch (e) {
    return errorResponse(e);
  }
}

/**
 * A circuit breaker (opossum) around runCheckout: when calls fail because
 * the database refuses connections, drops them or times out (half of them
 * over at least `volumeThreshold` calls), it opens and the route answers
 * 503 at once instead of piling requests onto a dying server; after
 * `resetTimeout` ms one trial call goes through, and a success closes it.
 * Only a connection's failure counts: refusals are rows, and the other
 * errors (a bad request, a key reused, a lock timeout) are a healthy database.
 */
export function checkoutBreaker(
  db: NodePgDatabase,
  { timeout = 10000, resetTimeout = 5000, volumeThreshold = 5, errorThresholdPercentage = 50 } = {},
) {
  const breaker = new CircuitBreaker(
    (customerId: number, lines: Line[], idempotencyKey: string, options: CheckoutOptions) =>
      runCheckout(db, customerId, lines, idempotencyKey, options),
    { timeout, resetTimeout, volumeThreshold, errorThresholdPercentage, errorFilter: (e: unknown) => !unavailable(e) },
  );
  let openedAt = 0;
  breaker.on("open", () => (openedAt = Date.now()));
  return Object.assign(breaker, { retryAfter: () => (resetTimeout - (Date.now() - openedAt)) / 1000 });
}

/** A checkout through the breaker: 503 at once while it is open */
export async function guardedCheckout(
  breaker: ReturnType<typeof checkoutBreaker>,
  customerId: number,
  lines: Line[],
  idempotencyKey: string,
  options: CheckoutOptions = {},
): Promise<CheckoutResponse> {
  try {
    return respond(await breaker.fire(customerId, lines, idempotencyKey, options));
  } catch (e) {
    if ((e as { code?: string }).code === "EOPENBREAKER") {
      return retryLater("unavailable", "Checkout is unavailable for a moment: please try again.", breaker.retryAfter());
    }
    return errorResponse(e);
  }
}

const badRequest = (code: string, message: string): CheckoutResponse => ({ status: 400, body: { code, message } });

/** The request's body and key, checked, or the 400 that says what is wrong */
function parse(req: IncomingMessage, text: string): { customerId: number; lines: Line[]; key: string; voucherCode: string | null } | CheckoutResponse {
  const key = req.headers["idempotency-key"];
  if (typeof key !== "string") {
    return badRequest("idempotency_key_required", "Send an Idempotency-Key header: one per checkout, the same on every retry of it.");
  }
  if (key.length === 0 || key.length > 255) {
    return badRequest("idempotency_key_invalid", "The Idempotency-Key must be 1 to 255 characters long.");
  }
  let body: { customerId?: unknown; lines?: unknown; voucherCode?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    return badRequest("bad_request", "Send a JSON body.");
  }
  const lines = body?.lines;
  if (!Array.isArray(lines) || lines.length < 1 || lines.length > 50 ||
      !lines.every((l) => Number.isSafeInteger(l?.productId) && l.productId > 0 &&
        Number.isSafeInteger(l?.quantity) && l.quantity >= 1 && l.quantity <= 1000)) {
    return badRequest("bad_lines", "Send 1 to 50 lines of {productId, quantity}, quantities from 1 to 1000.");
  }
  if (!Number.isSafeInteger(body.customerId)) return badRequest("bad_request", "Send the customerId.");
  if (body.voucherCode != null && typeof body.voucherCode !== "string") return badRequest("bad_request", "voucherCode is a string.");
  return {
    customerId: body.customerId as number,
    lines: lines.map((l) => ({ productId: l.productId, quantity: l.quantity })),
    key,
    voucherCode: (body.voucherCode as string | undefined) ?? null,
  };
}

// POST /checkout, Idempotency-Key: ..., {"customerId": 1, "lines": [{"productId": 1, "quantity": 1}], "voucherCode": "FLASH20"}
// (customerId stands in for the shop's session: take it from the sign-in, never from the body)
export function checkoutServer(db: NodePgDatabase): Server {
  const breaker = checkoutBreaker(db);
  return createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let response: CheckoutResponse;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== "POST" || req.url !== "/checkout") {
      response = { status: 404, body: { code: "not_found", message: "POST /checkout" } };
    } else {
      const r = parse(req, Buffer.concat(chunks).toString("utf8"));
      response = "status" in r ? r : await guardedCheckout(breaker, r.customerId, r.lines, r.key, { voucherCode: r.voucherCode });
    }
    res.writeHead(response.status, { "content-type": "application/json", ...response.headers });
    res.end(JSON.stringify(response.body));
  });
}
