// Live stock for every page, computed once for all of them.
//
// One dedicated connection, outside the pool (a pooler in transaction
// mode cannot LISTEN), listens on channel checkout_stock, where
// shop_notify_stock_changes() announces every product that sold out or
// came back.  A transition goes to every page at once.  Between them the
// hub reads the stock of all products (the product_stock view: no locks,
// never the ledger) at most `maxReadsPerSecond` times a second, whatever
// the number of pages: after its own sales, after a notice, and every
// second for whatever else moves stock (a restock from the back office).
// A page hears only what it shows changing: sold out, back, or the "only
// N left" count once stock is at or under `lowStock`.
//
// If the listening connection drops, the hub reconnects with backoff and
// sends every page a fresh snapshot: notices sent in the gap are lost, the
// snapshot is the truth.
//
// A bundle (1.3) is a product like any other here: product_stock gives
// what its parts make, and shop_notify_stock_changes() announces it when a
// part sells out or comes back.  Its view carries its parts, read from
// bundle_parts when the role may (shop_grant_app() grants it since 1.3),
// for the page to say what is in it.
import pg from "pg";
import type { Pool, ClientConfig } from "pg";

/** A part of a bundle: `quantity` units of product `productId` per bundle */
export type BundlePart = { productId: number; name: string; quantity: number };

export type ProductView = {
  id: number;
  name: string;
  priceCents: number;
  stock: number;
  soldOut: boolean;
  low: boolean;
  /** a bundle's parts (a product that is no bundle has none) */
  parts?: BundlePart[];
};

const READ_STOCK = `SELECT p.id, p.name, p.price_cents, s.stock, NULL AS parts
                      FROM products AS p JOIN product_stock AS s ON s.product_id = p.id
                     ORDER BY p.id`;
const READ_STOCK_AND_PARTS = `SELECT p.id, p.name, p.price_cents, s.stock,
       (SELECT pg_catalog.json_agg(json_build_object('productId', bp.product_id, 'name', pp.name,
                                                     'quantity', bp.quantity) ORDER BY bp.product_id)
          FROM bundle_parts AS bp JOIN products AS pp ON pp.id = bp.product_id
         WHERE bp.bundle_id = p.id) AS parts
  FROM products AS p JOIN product_stock AS s ON s.product_id = p.id
 ORDER BY p.id`;
/** Whether this role may read the bundles' parts: a shop before 1.3 has none, a role without shop_grant_app() may not */
const CAN_READ_PARTS = `SELECT t IS NOT NULL AND pg_catalog.has_table_privilege(t, 'SELECT') AS ok
  FROM pg_catalog.to_regclass('bundle_parts') AS t`;

type Listener = (event: string, data: unknown) => void;

export type StockHubOptions = {
  lowStock?: number;
  maxReadsPerSecond?: number;
  pollMs?: number;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
};

export class StockHub {
  private products = new Map<number, ProductView>();
  private pages = new Set<Listener>();
  private listener: pg.Client | null = null;
  private reconnectDelay = 250;
  private lastRead = 0;
  private readTimer: NodeJS.Timeout | null = null;
  private reading: Promise<void> | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** READ_STOCK_AND_PARTS when the role may read bundle_parts; decided at the first read */
  private readSql: string | null = null;
  readonly lowStock: number;
  private readonly minGap: number;
  private readonly pollMs: number;
  private readonly log: NonNullable<StockHubOptions["log"]>;
  /** counters a test or a dashboard reads */
  readonly stats = { reads: 0, notices: 0, reconnects: 0, snapshotsSent: 0 };

  constructor(
    private readonly pool: Pool,
    private readonly listenConfig: ClientConfig,
    { lowStock = 10, maxReadsPerSecond = 4, pollMs = 1000, log = () => {} }: StockHubOptions = {},
  ) {
    this.lowStock = lowStock;
    this.minGap = 1000 / maxReadsPerSecond;
    this.log = log;
    this.pollMs = pollMs;
  }

  async start(): Promise<void> {
    // the database down at start: pages get the products at the first read that works
    await this.read().catch((e) => this.log("stock read failed", { error: (e as Error).message }));
    await this.listen().catch(() => this.reconnectLater());
    this.pollTimer = setInterval(() => this.refresh(), this.pollMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.readTimer) clearTimeout(this.readTimer);
    await this.reading?.catch(() => {});
    await this.listener?.end().catch(() => {});
  }

  get pageCount(): number {
    return this.pages.size;
  }

  get listening(): boolean {
    return this.listener !== null;
  }

  snapshot(): ProductView[] {
    return [...this.products.values()].sort((a, b) => a.id - b.id);
  }

  /** A page's subscription: the snapshot now, then its changes; returns the unsubscribe */
  subscribe(page: Listener): () => void {
    this.pages.add(page);
    page("snapshot", this.snapshot());
    this.stats.snapshotsSent++;
    return () => this.pages.delete(page);
  }

  private broadcast(event: string, data: unknown) {
    for (const page of this.pages) page(event, data);
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ ...this.listenConfig, application_name: "storefront stock listener" });
    client.on("error", (e) => this.dropped(client, e));
    client.on("end", () => this.dropped(client));
    client.on("notification", (n) => this.notice(n.payload));
    await client.connect();
    await client.query("LISTEN checkout_stock");
    this.listener = client;
    this.reconnectDelay = 250;
    // what happened while nobody listened: every page gets the truth
    await this.read();
    this.broadcast("snapshot", this.snapshot());
    this.stats.snapshotsSent += this.pages.size;
  }

  private dropped(client: pg.Client, e?: Error) {
    if (this.listener !== client) return;
    this.listener = null;
    if (this.stopped) return;
    this.log("stock listener lost", { error: e?.message });
    client.end().catch(() => {});
    this.reconnectLater();
  }

  private reconnectLater() {
    if (this.stopped) return;
    const delay = this.reconnectDelay * (0.5 + Math.random());
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, 5000);
    setTimeout(() => {
      if (this.stopped) return;
      this.stats.reconnects++;
      this.listen().catch((e) => {
        this.log("stock listener reconnect failed", { error: (e as Error).message });
        this.reconnectLater();
      });
    }, delay);
  }

  private notice(payload: string | undefined) {
    this.stats.notices++;
    let n: { product_id?: number; stock?: number; state?: string };
    try {
      n = JSON.parse(payload ?? "");
    } catch {
      return;
    }
    const p = this.products.get(Number(n.product_id));
    if (p !== undefined && typeof n.stock === "number") {
      this.apply(p, n.stock);
    }
    this.refresh();
  }

  /** Ask for a read soon: at most one per minGap, coalesced */
  refresh(): void {
    if (this.readTimer !== null || this.stopped) return;
    const wait = Math.max(0, this.lastRead + this.minGap - Date.now());
    this.readTimer = setTimeout(() => {
      this.readTimer = null;
      this.read().catch((e) => this.log("stock read failed", { error: (e as Error).message }));
    }, wait);
  }

  private async read(): Promise<void> {
    if (this.reading !== null) return this.reading;
    this.reading = (async () => {
      this.lastRead = Date.now();
      this.stats.reads++;
      // the listening connection when it is up: page updates never queue
      // behind checkouts for a pool connection
      const db = this.listener ?? this.pool;
      if (this.readSql === null) {
        const { rows } = await db.query(CAN_READ_PARTS);
        this.readSql = rows[0].ok ? READ_STOCK_AND_PARTS : READ_STOCK;
      }
      const { rows } = await db.query(this.readSql);
      const seen = new Set<number>();
      for (const r of rows) {
        const id = Number(r.id);
        seen.add(id);
        const p = this.products.get(id);
        if (p === undefined) {
          const view: ProductView = { id, name: r.name, priceCents: Number(r.price_cents), stock: 0, soldOut: false, low: false };
          if (r.parts !== null) view.parts = r.parts;
          this.products.set(id, view);
          this.apply(view, r.stock, true);
          this.broadcast("product", view);
        } else {
          // parts given to a product after it was listed: in the next page load
          if (r.parts !== null) p.parts = r.parts;
          this.apply(p, r.stock);
        }
      }
      for (const id of this.products.keys()) if (!seen.has(id)) this.products.delete(id);
    })().finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  /** Set a product's stock; tell pages only what they show changing */
  private apply(p: ProductView, stock: number, quiet = false) {
    const before = { soldOut: p.soldOut, shown: p.low ? p.stock : -1 };
    p.stock = stock;
    p.soldOut = stock <= 0;
    p.low = !p.soldOut && stock <= this.lowStock;
    if (quiet) return;
    if (p.soldOut !== before.soldOut) {
      this.broadcast(p.soldOut ? "sold_out" : "back_in_stock", p);
    } else if ((p.low ? p.stock : -1) !== before.shown) {
      this.broadcast("stock", p);
    }
  }
}
