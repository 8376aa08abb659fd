// The Drizzle schema of a shop that runs on the checkout extension: the
// extension's tables, mapped as they are, plus one column of the shop's own
// (products.sku, added with ALTER TABLE by the shop's migration; checkout
// keeps working, it names the columns it uses).  The shop extends these
// tables rather than keeping tables of its own beside them.
import {
  bigint,
  integer,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from "drizzle-orm/pg-core";

export const products = pgTable("products", {
  id: bigint("id", { mode: "number" }).primaryKey().generatedByDefaultAsIdentity(),
  name: text("name").notNull(),
  priceCents: bigint("price_cents", { mode: "number" }).notNull(),
  // what checkout sells from when the product is not split into stock
  // slots; read what is on sale from product_stock
  stock: integer("stock").notNull(),
  // the shop's own column
  sku: text("sku").unique(),
});

export const customers = pgTable("customers", {
  id: bigint("id", { mode: "number" }).primaryKey().generatedByDefaultAsIdentity(),
  name: text("name").notNull(),
});

export const cartItems = pgTable(
  "cart_items",
  {
    customerId: bigint("customer_id", { mode: "number" })
      .notNull()
      .references(() => customers.id, { onDelete: "cascade" }),
    productId: bigint("product_id", { mode: "number" })
      .notNull()
      .references(() => products.id),
    quantity: integer("quantity").notNull(),
  },
  (t) => [primaryKey({ columns: [t.customerId, t.productId] })],
);

export const orders = pgTable("orders", {
  id: bigint("id", { mode: "number" }).primaryKey(),
  customerId: bigint("customer_id", { mode: "number" }).notNull(),
  totalCents: bigint("total_cents", { mode: "number" }).notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
  status: text("status").$type<"placed" | "paid" | "cancelled">().notNull(),
  expiresAt: timestamp("expires_at", { withTimezone: true }),
  paidAt: timestamp("paid_at", { withTimezone: true }),
  paymentRef: text("payment_ref"),
});

export const orderItems = pgTable(
  "order_items",
  {
    orderId: bigint("order_id", { mode: "number" }).notNull(),
    productId: bigint("product_id", { mode: "number" }).notNull(),
    quantity: integer("quantity").notNull(),
    unitPriceCents: bigint("unit_price_cents", { mode: "number" }).notNull(),
    cancelledQuantity: integer("cancelled_quantity").notNull(),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.productId] })],
);

// The stock on sale (a product's row plus its stock slots): a view
export const productStock = pgTable("product_stock", {
  productId: bigint("product_id", { mode: "number" }).notNull(),
  stock: integer("stock").notNull(),
  slots: integer("slots").notNull(),
});
