// What a checkout's outcome means to an HTTP client: the one place where
// a PostgreSQL error, a pool timeout or an open breaker becomes a status,
// headers and a JSON body.  Every body has a `code` a program can switch
// on and a `message` a shopper can read; no SQL text, no stack trace and
// no server detail ever goes out (an unexpected error is logged by the
// caller and answered as 500 "internal").
//
//   201  an order placed by this request
//   200  the order an earlier request with this Idempotency-Key placed
//        (header Idempotent-Replayed: true)
//   409  SH001 insufficient stock, SH005 purchase limit, SH010/SH011 voucher
//   422  the key was used for another cart; SH009 a voucher refused
//   400  a bad request: the key, the lines, an unknown product, empty cart
//   401  no session
//   503  retry with the same key: lock timeout, serialization failure,
//        deadlock, pool timeout, breaker open, database unreachable;
//        Retry-After says when (seconds); `maybePlaced` is true when the
//        connection died mid-call (the key will tell)

export type Outcome = {
  status: number;
  headers?: Record<string, string>;
  body: Record<string, unknown>;
};

/** What node-postgres gives for a server error, or a socket error's code */
export type PgError = { code?: string; message?: string; detail?: string };

/** A line of SH001's DETAIL: Product 1 "Flash Sale Smartphone": available 3, requested 5. */
const SHORT_LINE = /^Product (\d+) "(.*)": available (\d+)(?:, preorderable (\d+))?, requested (\d+)\.$/;

export type ShortLine = {
  productId: number;
  product: string;
  available: number;
  preorderable?: number;
  requested: number;
};

export function parseShortLines(detail: string | undefined): ShortLine[] {
  const lines: ShortLine[] = [];
  for (const text of (detail ?? "").split("\n")) {
    const m = SHORT_LINE.exec(text);
    if (m === null) continue;
    const line: ShortLine = {
      productId: Number(m[1]),
      product: m[2],
      available: Number(m[3]),
      requested: Number(m[5]),
    };
    if (m[4] !== undefined) line.preorderable = Number(m[4]);
    lines.push(line);
  }
  return lines;
}

/** Errors after which the same request, with the same key, may succeed */
const RETRY_LATER: Record<string, string> = {
  "55P03": "lock_timeout",
  "40001": "serialization_failure",
  "40P01": "deadlock",
  "53300": "too_many_connections",
  "57P03": "database_starting",
};

/** Errors where the connection died: the order may exist, the key will tell */
const CONNECTION_LOST = new Set([
  "08000", "08003", "08006", "57P01", "57P02", "ECONNRESET", "EPIPE", "ECONNREFUSED", "ENOTFOUND",
  "ETIMEDOUT", "connection_terminated",
]);

/** Business answers and caller mistakes: the database is well (a breaker ignores them) */
export function isBusinessError(e: unknown): boolean {
  const code = (e as PgError)?.code ?? "";
  return (
    code.startsWith("SH") || code.startsWith("22") || code.startsWith("23") || code === "42501" ||
    code in RETRY_LATER || e instanceof KeyReusedError || e instanceof BadRequestError
  );
}

/** The Idempotency-Key names an order of other lines than this request's */
export class KeyReusedError extends Error {
  constructor(readonly orderId: number) {
    super("idempotency key reused for another cart");
  }
}

/** A request the server refuses before it reaches the database */
export class BadRequestError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export function retryLater(code: string, message: string, seconds: number, maybePlaced = false): Outcome {
  return {
    status: 503,
    headers: { "retry-after": String(Math.max(1, Math.ceil(seconds))) },
    body: { code, message, retryable: true, maybePlaced },
  };
}

const BUSY = "The shop is very busy: please try again in a moment.";

/** The response for an error thrown by a checkout (or null: not one we know) */
export function errorOutcome(e: unknown): Outcome | null {
  if (e instanceof KeyReusedError) {
    return {
      status: 422,
      body: {
        code: "idempotency_key_reused",
        message: "This Idempotency-Key was used for a checkout of other items: make a new key for a new checkout.",
        orderId: e.orderId,
      },
    };
  }
  if (e instanceof BadRequestError) {
    return { status: 400, body: { code: e.code, message: e.message } };
  }
  const err = (e ?? {}) as PgError;
  const code = err.code ?? "";
  if (code in RETRY_LATER) return retryLater(RETRY_LATER[code], BUSY, 1);
  if (CONNECTION_LOST.has(code) || /Connection terminated|connect ECONNREFUSED/.test(err.message ?? "")) {
    return retryLater("database_unreachable", BUSY, 2, true);
  }
  if (/timeout exceeded when trying to connect/.test(err.message ?? "")) {
    return retryLater("pool_timeout", BUSY, 1);
  }
  switch (code) {
    case "SH001": {
      const lines = parseShortLines(err.detail);
      const first = lines[0];
      return {
        status: 409,
        body: {
          code: "SH001",
          message: err.message,
          product: first?.product,
          productId: first?.productId,
          available: first?.available,
          requested: first?.requested,
          lines,
        },
      };
    }
    case "SH005":
      return { status: 409, body: { code: "SH005", message: err.message } };
    case "SH009":
      return { status: 422, body: { code: "SH009", message: err.message } };
    case "SH010":
    case "SH011":
      return { status: 409, body: { code, message: err.message } };
    case "SH002":
      return { status: 400, body: { code: "empty_cart", message: "Your cart is empty." } };
    case "SH003":
      return { status: 401, body: { code: "no_session", message: "Your session has ended: reload the page." } };
    case "23503":
      return { status: 400, body: { code: "unknown_product", message: "A product in the request does not exist." } };
    case "22023":
    case "22004":
      return { status: 400, body: { code: "bad_request", message: err.message } };
  }
  return null;
}

export const INTERNAL: Outcome = {
  status: 500,
  body: { code: "internal", message: "Something went wrong on our side: please try again." },
};
