// The HTTP answer of each outcome of a checkout, as docs/reference.md's
// "SQLSTATEs over HTTP" lays it down row by row (the storefront's
// src/outcomes.ts follows the same table): 201 placed, 200 with
// Idempotent-Replayed replayed, a refusal's status with its figures as
// `data`, 4xx for the caller's mistakes, 503 with Retry-After (and
// `maybePlaced`) for "retry with the same key", 500 for anything else.
// Every error body has a `code` a program switches on and a `message` a
// shopper reads.
export type CheckoutResponse = {
  status: number;
  headers?: Record<string, string>;
  body: Record<string, unknown>;
};

/** The PostgreSQL error behind a failed query: drizzle wraps the driver's error (DrizzleQueryError) as `cause` */
export type PgError = { code?: string; message?: string; constraint?: string };
export function pgError(e: unknown): PgError {
  let err = e as PgError & { cause?: unknown };
  while (err && err.code === undefined && err.cause !== undefined) {
    err = err.cause as PgError & { cause?: unknown };
  }
  return err ?? {};
}

/** The SQLSTATE of an error as the table reads it */
export function sqlstateOf(e: unknown): string {
  return pgError(e).code ?? "";
}

type Row = { status: number; code: string; message?: string };

export const BY_SQLSTATE: Record<string, Row> = {
  SH001: { status: 409, code: "insufficient_stock" },
  SH005: { status: 409, code: "purchase_limit" },
  SH009: { status: 422, code: "voucher_invalid" },
  SH010: { status: 409, code: "voucher_used_up" },
  SH011: { status: 409, code: "voucher_customer_limit" },
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

/** Retry with the same key: nothing was placed */
export const RETRY_LATER: Record<string, string> = {
  "55P03": "lock_timeout",
  "40001": "serialization_failure",
  "40P01": "deadlock",
  "57014": "statement_timeout",
};

/** The connection failed before the statement left: refused, or the client already broken */
export function neverSent(e: unknown): boolean {
  const err = pgError(e);
  return ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH"].includes(err.code ?? "") || /not queryable/.test(err.message ?? "");
}

/** The connection broke: the statement may have run (the key tells) unless it never left */
export function connectionLost(e: unknown): boolean {
  const err = pgError(e);
  const code = err.code ?? "";
  return (
    code.startsWith("08") || code === "57P01" || code === "57P02" || /^E[A-Z]+$/.test(code) ||
    /Connection terminated|not queryable|Query read timeout/.test(err.message ?? "")
  );
}

/** The database could not answer at all (down, unreachable, full): what a circuit breaker counts */
export function unavailable(e: unknown): boolean {
  const err = pgError(e);
  return (
    connectionLost(e) || neverSent(e) || ["57P03", "53300"].includes(err.code ?? "") ||
    /timeout exceeded when trying to connect|Timed out after/.test(err.message ?? "")
  );
}

const BUSY = "The shop is very busy: please try again in a moment.";
const UNREACHABLE = "We could not reach the shop's database: please try again in a moment.";

export function retryLater(code: string, message: string, seconds: number, maybePlaced = false): CheckoutResponse {
  return {
    status: 503,
    headers: { "retry-after": String(Math.max(1, Math.ceil(seconds))) },
    body: { code, message, retryable: true, maybePlaced },
  };
}

const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
export function camelKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camelKeys);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [camel(k), camelKeys(x)]));
}

/** A refusal row of shop_place_order: its status, the documented message, the figures */
export function refused(sqlstate: string, message: string, refusal: unknown): CheckoutResponse {
  const row = BY_SQLSTATE[sqlstate] ?? { status: 409, code: "refused" };
  return { status: row.status, body: { code: row.code, sqlstate, message, data: camelKeys(refusal ?? {}) } };
}

/** The answer for a checkout's error */
export function errorResponse(e: unknown): CheckoutResponse {
  const code = sqlstateOf(e);
  if (code in RETRY_LATER) return retryLater(RETRY_LATER[code], BUSY, 1);
  // at connect: nothing was sent
  if (code === "57P03") return retryLater("database_starting", UNREACHABLE, 2);
  if (code === "53300") return retryLater("too_many_connections", BUSY, 1);
  if (/timeout exceeded when trying to connect/.test(pgError(e).message ?? "")) return retryLater("pool_timeout", BUSY, 1);
  if (code === "SH008") return retryLater("shard_unavailable", UNREACHABLE, 2, true);
  // the client's query timeout, the breaker's: the statement was sent and may still commit
  if (/Query read timeout|Timed out after/.test(pgError(e).message ?? "")) return retryLater("database_timeout", UNREACHABLE, 2, true);
  if (neverSent(e)) return retryLater("database_unreachable", UNREACHABLE, 2, false);
  if (connectionLost(e)) return retryLater("database_unreachable", UNREACHABLE, 2, true);
  const row = BY_SQLSTATE[code];
  if (row !== undefined) {
    return { status: row.status, body: { code: row.code, sqlstate: code, message: row.message ?? pgError(e).message } };
  }
  return { status: 500, body: { code: "internal", message: "Something went wrong on our side: please try again." } };
}
