// One checkout attempt: the cart set to the request's lines (if it sends
// any) and shop_checkout(customer, key) in one transaction of the pool.
//
// The Idempotency-Key is the attempt: the first request with it places the
// order, every later one (a retry after a timeout, a second tab, a reload)
// gets the same order back and changes nothing.  shop_checkout returns the
// order id either way; whether this transaction placed it is read from the
// order row's xmin (this transaction's id: placed now).  A replay rolls the
// transaction back, so a retry never refills a cart the first request
// emptied; a replay whose lines differ from the order's is a key reused for
// another cart (422), never a silent wrong order.
import type { Pool, PoolClient } from "pg";
import CircuitBreaker from "opossum";
import { BadRequestError, KeyReusedError, isBusinessError } from "./outcomes.js";

export type Line = { productId: number; quantity: number };

export type Order = {
  id: number;
  status: string;
  totalCents: number;
  createdAt: string;
  lines: { productId: number; name: string; quantity: number; unitPriceCents: number }[];
};

export type Placed = { order: Order; replayed: boolean };

const MAX_LINES = 50;
const MAX_QUANTITY = 1000;

/** The request's lines, checked: 1 to 50 distinct products, quantities 1 to 1000 */
export function parseLines(value: unknown): Line[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_LINES) {
    throw new BadRequestError("bad_lines", `Send 1 to ${MAX_LINES} lines of {productId, quantity}.`);
  }
  const seen = new Set<number>();
  return value.map((l) => {
    const productId = Number((l as Line)?.productId);
    const quantity = Number((l as Line)?.quantity);
    if (!Number.isSafeInteger(productId) || productId <= 0 || seen.has(productId)) {
      throw new BadRequestError("bad_lines", "Each line needs a distinct positive integer productId.");
    }
    if (!Number.isSafeInteger(quantity) || quantity <= 0 || quantity > MAX_QUANTITY) {
      throw new BadRequestError("bad_lines", `Each quantity must be an integer from 1 to ${MAX_QUANTITY}.`);
    }
    seen.add(productId);
    return { productId, quantity };
  });
}

/** The Idempotency-Key header, checked as shop_checkout checks it (1 to 255 characters) */
export function parseKey(value: unknown): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new BadRequestError(
      "idempotency_key_required",
      "Send an Idempotency-Key header: one per checkout, the same on every retry of it.",
    );
  }
  if (value.length > 255) {
    throw new BadRequestError("idempotency_key_invalid", "The Idempotency-Key must be 1 to 255 characters long.");
  }
  return value;
}

const sameLines = (a: Line[], b: Line[]) => {
  const key = (ls: Line[]) =>
    ls.map((l) => `${l.productId}:${l.quantity}`).sort().join(",");
  return key(a) === key(b);
};

async function readOrder(client: PoolClient, orderId: number): Promise<Order & { placedNow: boolean }> {
  const { rows } = await client.query(
    `SELECT o.id, o.status, o.total_cents, o.created_at,
            o.xmin::text = (pg_catalog.pg_current_xact_id_if_assigned()::text::bigint % 4294967296)::text
              AS placed_now,
            (SELECT pg_catalog.json_agg(json_build_object('productId', i.product_id, 'name', p.name,
                       'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.product_id)
               FROM order_items AS i JOIN products AS p ON p.id = i.product_id
              WHERE i.order_id = o.id) AS lines
       FROM orders AS o WHERE o.id = $1`,
    [orderId],
  );
  const r = rows[0];
  return {
    id: Number(r.id),
    status: r.status,
    totalCents: Number(r.total_cents),
    createdAt: new Date(r.created_at).toISOString(),
    placedNow: r.placed_now === true,
    lines: r.lines ?? [],
  };
}

async function cartLines(client: PoolClient, customerId: number): Promise<Line[]> {
  const { rows } = await client.query(
    "SELECT product_id, quantity FROM cart_items WHERE customer_id = $1",
    [customerId],
  );
  return rows.map((r) => ({ productId: Number(r.product_id), quantity: r.quantity }));
}

/** Replace the customer's cart with these lines (in the caller's transaction), one statement */
export async function setCart(client: PoolClient, customerId: number, lines: Line[]): Promise<void> {
  await client.query(
    `WITH wanted AS (
       SELECT l.product_id, l.quantity
         FROM ROWS FROM (pg_catalog.unnest($2::bigint[]), pg_catalog.unnest($3::integer[])) AS l (product_id, quantity)),
     gone AS (
       DELETE FROM cart_items AS c
        WHERE c.customer_id = $1 AND NOT EXISTS (SELECT FROM wanted AS w WHERE w.product_id = c.product_id))
     INSERT INTO cart_items (customer_id, product_id, quantity)
     SELECT $1, w.product_id, w.quantity FROM wanted AS w
         ON CONFLICT (customer_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity`,
    [customerId, lines.map((l) => l.productId), lines.map((l) => l.quantity)],
  );
}

/**
 * Check out the cart of `customerId` (set to `lines` first, when given) as
 * attempt `key`.  Throws the database's error (SH001, 55P03, ...), a
 * KeyReusedError, or the pool's.
 */
export async function placeOrder(pool: Pool, customerId: number, key: string, lines: Line[] | null): Promise<Placed> {
  const client = await pool.connect();
  let open = false;
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    open = true;
    const wanted = lines ?? (await cartLines(client, customerId));
    if (lines !== null) await setCart(client, customerId, lines);
    const { rows } = await client.query("SELECT shop_checkout($1::bigint, $2::text) AS order_id", [customerId, key]);
    const { placedNow, ...order } = await readOrder(client, Number(rows[0].order_id));
    // placed now: keep it; a replay: undo this request's cart
    await client.query(placedNow ? "COMMIT" : "ROLLBACK");
    open = false;
    if (placedNow) return { order, replayed: false };
    const got = order.lines.map((l) => ({ productId: l.productId, quantity: l.quantity }));
    if (wanted.length > 0 && !sameLines(wanted, got)) throw new KeyReusedError(order.id);
    return { order, replayed: true };
  } catch (e) {
    if (!isBusinessError(e)) broken = e as Error; // the connection may be dead: never reuse it
    else if (open) await client.query("ROLLBACK").catch((r: Error) => (broken = r));
    throw e;
  } finally {
    client.release(broken);
  }
}

/**
 * placeOrder behind a circuit breaker (opossum): when checkouts fail
 * because the database is down, unreachable or too slow (half of at least
 * `volumeThreshold` calls in the rolling window), it opens and checkouts
 * are answered 503 at once instead of piling onto a dying server; after
 * `resetTimeout` ms one trial call goes through, and a success closes it.
 * The shop's own answers (sold out, a limit, a lock timeout under a crowd)
 * never count: a crowd told "sold out" is a healthy database.
 */
export function checkoutBreaker(pool: Pool, { timeout = 10000, resetTimeout = 3000, volumeThreshold = 5 } = {}) {
  return new CircuitBreaker(
    (customerId: number, key: string, lines: Line[] | null) => placeOrder(pool, customerId, key, lines),
    { timeout, resetTimeout, volumeThreshold, errorThresholdPercentage: 50, errorFilter: isBusinessError },
  );
}
