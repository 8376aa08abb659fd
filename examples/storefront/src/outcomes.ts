// What a checkout's outcome means to an HTTP client: the one place where a
// row of shop_place_order, a PostgreSQL error, a database out of reach or
// an open breaker becomes a status, headers and a JSON body.  It follows
// docs/reference.md, "SQLSTATEs over HTTP", row by row (the Drizzle
// example follows the same table).
//
// Every error body has a `code` a program switches on and a `message` a
// shopper reads; a refusal adds its `sqlstate` and its figures as `data`
// (shop_place_order's refusal JSON, keys in camelCase), a 503 `retryable`
// and `maybePlaced`.  No SQL text, stack trace or server detail goes out:
// an error not in the table is logged by the caller and answered 500.
import pg from "pg";
import { DatabaseUnavailable, type PlaceOrderResult } from "./db.js";

export type Outcome = {
  status: number;
  headers?: Record<string, string>;
  body: Record<string, unknown>;
};

type Row = { status: number; code: string; message?: string };

/** The table's rows for the SQLSTATEs a checkout answers with (refusals and errors) */
export const BY_SQLSTATE: Record<string, Row> = {
  // refusals: shop_place_order's row (outcome 'refused'); shop_checkout raises them
  SH001: { status: 409, code: "insufficient_stock" },
  SH005: { status: 409, code: "purchase_limit" },
  SH009: { status: 422, code: "voucher_invalid" },
  SH010: { status: 409, code: "voucher_used_up" },
  SH011: { status: 409, code: "voucher_customer_limit" },
  // errors: a bug of the caller, or who is asking
  SH015: {
    status: 422,
    code: "idempotency_key_reused",
    message: "This Idempotency-Key was used for a checkout of other items: make a new key for a new checkout.",
  },
  SH002: { status: 400, code: "empty_cart", message: "Your cart is empty." },
  SH003: { status: 401, code: "unknown_customer", message: "Your session names no customer: sign in again." },
  SH004: { status: 400, code: "unknown_product", message: "A product in the request does not exist." },
  "22023": { status: 400, code: "bad_request" },
  "22004": { status: 400, code: "bad_request" },
};

/** Errors after which the same request, with the same key, may succeed: nothing was placed */
const RETRY_LATER: Record<string, string> = {
  "55P03": "lock_timeout",
  "40001": "serialization_failure",
  "40P01": "deadlock",
  "57014": "statement_timeout",
};

const BUSY = "The shop is very busy: please try again in a moment.";
const UNREACHABLE = "We could not reach the shop's database: please try again in a moment.";

export function retryLater(code: string, message: string, seconds: number, maybePlaced = false): Outcome {
  return {
    status: 503,
    headers: { "retry-after": String(Math.max(1, Math.ceil(seconds))) },
    body: { code, message, retryable: true, maybePlaced },
  };
}

const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
function camelKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camelKeys);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [camel(k), camelKeys(x)]));
}

/** The answer to a checkout the database answered with a row */
export function placeOrderOutcome(r: PlaceOrderResult): Outcome {
  switch (r.outcome) {
    case "placed":
      return { status: 201, body: { outcome: "placed", order: r.order } };
    case "replayed":
      return { status: 200, headers: { "idempotent-replayed": "true" }, body: { outcome: "replayed", order: r.order } };
    case "refused": {
      const row = BY_SQLSTATE[r.sqlstate] ?? { status: 409, code: "refused" };
      return {
        status: row.status,
        body: { code: row.code, sqlstate: r.sqlstate, message: r.message, data: camelKeys(r.refusal) },
      };
    }
  }
}

/** A request the server refuses before it reaches the database (the route's schema, the session) */
export class BadRequestError extends Error {
  constructor(readonly code: string, message: string, readonly status = 400) {
    super(message);
  }
}

/** The breaker is open: `seconds` until it lets a trial call through */
export class BreakerOpen extends Error {
  constructor(readonly seconds: number) {
    super("the checkout's circuit breaker is open");
  }
}

/** The answer for an error (or null: not in the table; the caller logs it and answers 500) */
export function errorOutcome(e: unknown): Outcome | null {
  if (e instanceof BadRequestError) return { status: e.status, body: { code: e.code, message: e.message } };
  if (e instanceof BreakerOpen) {
    return retryLater("unavailable", "Checkout is unavailable for a moment: please try again.", e.seconds);
  }
  if (e instanceof DatabaseUnavailable) {
    switch (e.reason) {
      case "pool_timeout":
        return retryLater("pool_timeout", BUSY, 1);
      case "starting":
        return retryLater("database_starting", UNREACHABLE, 2);
      case "too_many_connections":
        return retryLater("too_many_connections", BUSY, 1);
      case "timeout":
        return retryLater("database_timeout", UNREACHABLE, 2, e.maybePlaced);
      case "unreachable":
        return retryLater("database_unreachable", UNREACHABLE, 2, e.maybePlaced);
    }
  }
  if (!(e instanceof pg.DatabaseError)) return null;
  const code = e.code ?? "";
  if (code in RETRY_LATER) return retryLater(RETRY_LATER[code], BUSY, 1);
  // a sharded shop's proxy: the shard did not answer, a call cut off mid-way may have been done
  if (code === "SH008") return retryLater("shard_unavailable", UNREACHABLE, 2, true);
  const row = BY_SQLSTATE[code];
  if (row === undefined) return null;
  return { status: row.status, body: { code: row.code, sqlstate: code, message: row.message ?? e.message } };
}

export const INTERNAL: Outcome = {
  status: 500,
  body: { code: "internal", message: "Something went wrong on our side: please try again." },
};
