// The storefront's data module: every statement the server runs against the
// shop, each one statement in autocommit on the pool, and what became of it.
// Routes never see SQL, a pool client or a driver's error: they get rows as
// the API's types, a server's answer (a DatabaseError with its SQLSTATE,
// mapped to HTTP in outcomes.ts), or a DatabaseUnavailable that says whether
// the statement may have run.
//
// A checkout is one statement, SELECT * FROM shop_place_order(...): the
// cart set to the request's lines and checked out, the order (placed now, or
// replayed from an earlier call with the key) or the refusal as data.  No
// BEGIN, no COMMIT, no reading back: one round trip.
//
// The pool outlives its database.  Every client gets an 'error' listener
// the moment it is made (a client checked out when its server stops emits
// 'error'; without a listener Node ends the process), and the pool's own
// 'error' event (an idle client lost) is handled.  A client whose
// connection broke is destroyed, never given back; one that had a server
// error (SH015, a lock timeout) is healthy and goes back to the pool.
import pg from "pg";
import type { Pool, PoolClient, PoolConfig, QueryResult } from "pg";

export type Line = { productId: number; quantity: number };

export type OrderLine = {
  productId: number;
  name: string;
  quantity: number;
  unitPriceCents: number;
  discountCents: number;
  preorderedQuantity: number;
};

export type Order = {
  id: number;
  status: string;
  totalCents: number;
  discountCents: number;
  paymentDeadline: string | null;
  lines: OrderLine[];
};

/** What shop_place_order answered: an order (placed by this call or replayed), or a refusal as data */
export type PlaceOrderResult =
  | { outcome: "placed" | "replayed"; order: Order }
  | { outcome: "refused"; sqlstate: string; message: string; refusal: Record<string, unknown> };

export type CartLine = { productId: number; name: string; quantity: number; available: number; canFulfil: boolean };

/**
 * The database could not be asked, or could not answer: the same request,
 * with the same key, may succeed later.  `maybePlaced` is true when the
 * statement was sent and its connection broke before the answer (the order
 * may exist: the key tells); false when it never left this process.
 */
export class DatabaseUnavailable extends Error {
  constructor(
    readonly reason: "unreachable" | "pool_timeout" | "starting" | "too_many_connections" | "timeout",
    readonly maybePlaced: boolean,
    readonly cause: unknown,
  ) {
    super(`database unavailable (${reason}): ${(cause as Error)?.message ?? cause}`);
  }
}

/** SQLSTATEs that end the connection: the server stopped it (57P01-02) or the link failed (class 08) */
const connectionEnding = (code: string) => code.startsWith("08") || code === "57P01" || code === "57P02";

/** Errors of a query whose connection broke, not answers of the server */
function connectionLost(e: unknown): boolean {
  if (e instanceof pg.DatabaseError) return connectionEnding(e.code ?? "");
  const err = e as { code?: string; message?: string };
  return (
    /^E[A-Z]+$/.test(err?.code ?? "") || // a socket's ECONNRESET, EPIPE, ETIMEDOUT ...
    /Connection terminated|not queryable|Query read timeout/.test(err?.message ?? "")
  );
}

/** Why pool.connect() failed: every failure to reach the server is "unavailable", a bad configuration is not */
function connectFailure(e: unknown): Error {
  if (e instanceof pg.DatabaseError) {
    const code = e.code ?? "";
    if (code === "57P03") return new DatabaseUnavailable("starting", false, e); // starting up or shutting down
    if (code === "53300") return new DatabaseUnavailable("too_many_connections", false, e);
    if (connectionEnding(code)) return new DatabaseUnavailable("unreachable", false, e);
    return e; // a wrong password, database or role: the shop's configuration, a 500
  }
  if (/timeout exceeded when trying to connect/.test((e as Error)?.message ?? "")) {
    return new DatabaseUnavailable("pool_timeout", false, e);
  }
  return new DatabaseUnavailable("unreachable", false, e);
}

/** A pool whose clients all listen for 'error' from the moment they exist */
export function createPool(config: PoolConfig, log: (msg: string, extra?: Record<string, unknown>) => void = () => {}): Pool {
  const pool = new pg.Pool({ keepAlive: true, ...config });
  // an idle client lost (a restart, a failover): the pool drops it and makes a new one when asked
  pool.on("error", (e) => log("idle connection lost", { error: e.message }));
  // a checked-out client's connection broke: the query in flight fails with it, and run() destroys it
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

const PLACE_ORDER = `SELECT outcome, order_id, status, total_cents, discount_cents, payment_deadline, order_lines,
       sqlstate, message, refusal
  FROM shop_place_order($1::bigint, $2::jsonb, $3::text, $4::text)`;

const SET_CART = `WITH wanted AS (
    SELECT l.product_id, l.quantity
      FROM ROWS FROM (pg_catalog.unnest($2::bigint[]), pg_catalog.unnest($3::integer[])) AS l (product_id, quantity)),
  gone AS (
    DELETE FROM cart_items AS c
     WHERE c.customer_id = $1 AND NOT EXISTS (SELECT FROM wanted AS w WHERE w.product_id = c.product_id))
  INSERT INTO cart_items (customer_id, product_id, quantity)
  SELECT $1, w.product_id, w.quantity FROM wanted AS w
      ON CONFLICT (customer_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity`;

const CART_STATUS = `SELECT product_id, name, requested, available, can_fulfil, checkout_would_succeed
  FROM shop_cart_status($1)`;

const LATEST_ORDER = `SELECT o.id, o.status, o.total_cents, o.discount_cents, o.expires_at,
       (SELECT pg_catalog.json_agg(json_build_object('product_id', i.product_id, 'name', p.name,
                  'quantity', i.quantity, 'unit_price_cents', i.unit_price_cents,
                  'discount_cents', i.discount_cents, 'preordered_quantity', i.preordered_quantity)
                ORDER BY i.product_id)
          FROM order_items AS i JOIN products AS p ON p.id = i.product_id
         WHERE i.order_id = o.id) AS order_lines
  FROM orders AS o WHERE o.customer_id = $1 ORDER BY o.id DESC LIMIT 1`;

const NEW_CUSTOMER = "INSERT INTO customers (name) VALUES ('Shopper') RETURNING id";

type LineRow = {
  product_id: number | string;
  name: string;
  quantity: number;
  unit_price_cents: number | string;
  discount_cents: number | string;
  preordered_quantity: number;
};

const orderLines = (rows: LineRow[] | null): OrderLine[] =>
  (rows ?? []).map((l) => ({
    productId: Number(l.product_id),
    name: l.name,
    quantity: l.quantity,
    unitPriceCents: Number(l.unit_price_cents),
    discountCents: Number(l.discount_cents),
    preorderedQuantity: l.preordered_quantity,
  }));

const deadline = (d: Date | null) => (d === null ? null : d.toISOString());

export class ShopData {
  constructor(readonly pool: Pool) {}

  /** One statement on a client of the pool; see DatabaseUnavailable for what a failure means */
  private async run(text: string, values: unknown[]): Promise<QueryResult> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw connectFailure(e);
    }
    try {
      const result = await client.query(text, values);
      client.release();
      return result;
    } catch (e) {
      if (!connectionLost(e)) {
        client.release(); // a server's answer: the connection is fine
        throw e;
      }
      client.release(e as Error); // broken: destroyed, never reused
      const sent = !/not queryable/.test((e as Error)?.message ?? "");
      throw new DatabaseUnavailable(/Query read timeout/.test((e as Error)?.message ?? "") ? "timeout" : "unreachable", sent, e);
    }
  }

  /** The checkout of one HTTP request: the cart set to `lines` and checked out as attempt `key` */
  async placeOrder(customerId: number, lines: Line[], key: string, voucherCode: string | null): Promise<PlaceOrderResult> {
    const json = JSON.stringify(lines.map((l) => ({ product_id: l.productId, quantity: l.quantity })));
    const { rows } = await this.run(PLACE_ORDER, [customerId, json, key, voucherCode]);
    const r = rows[0];
    if (r.outcome === "refused") {
      return { outcome: "refused", sqlstate: r.sqlstate, message: r.message, refusal: r.refusal ?? {} };
    }
    return {
      outcome: r.outcome,
      order: {
        id: Number(r.order_id),
        status: r.status,
        totalCents: Number(r.total_cents),
        discountCents: Number(r.discount_cents),
        paymentDeadline: deadline(r.payment_deadline),
        lines: orderLines(r.order_lines),
      },
    };
  }

  /** Replace the customer's cart with these lines, one statement */
  async setCart(customerId: number, lines: Line[]): Promise<void> {
    await this.run(SET_CART, [customerId, lines.map((l) => l.productId), lines.map((l) => l.quantity)]);
  }

  /** The cart as shop_cart_status() shows it */
  async cart(customerId: number): Promise<{ lines: CartLine[]; checkoutWouldSucceed: boolean }> {
    const { rows } = await this.run(CART_STATUS, [customerId]);
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
  }

  /** The customer's latest order, or null */
  async latestOrder(customerId: number): Promise<Order | null> {
    const { rows } = await this.run(LATEST_ORDER, [customerId]);
    if (rows.length === 0) return null;
    const r = rows[0];
    return {
      id: Number(r.id),
      status: r.status,
      totalCents: Number(r.total_cents),
      discountCents: Number(r.discount_cents),
      paymentDeadline: deadline(r.expires_at),
      lines: orderLines(r.order_lines),
    };
  }

  /** A new customer (the example's sign-up): its id */
  async newCustomer(): Promise<number> {
    const { rows } = await this.run(NEW_CUSTOMER, []);
    return Number(rows[0].id);
  }
}
