/*-------------------------------------------------------------------------
 *
 * preorders.c
 *		A checkout of products sold before they arrive (since 1.2): which
 *		lines accept a preorder, the room under each product's cap, the
 *		units preordered under the cap row's lock, and their record.
 *
 * A product with a preorder cap (shop_set_preorder: a preorders row) may
 * be sold past its stock on hand to a buyer who accepted it
 * (cart_items.accept_preorder): such a line takes all the stock on hand
 * (over every location) and preorders the rest, if the room under the cap
 * (max_preorders - open_preorders) holds it; otherwise it is short (SH001,
 * whose message then names what is preorderable).  The units preordered
 * are recorded on the order's line (order_items.preordered_quantity) and
 * counted open on the preorders row until a restock fills them or a cancel
 * releases them (SQL: shop_fill_preorders, shop_give_back).  A shop whose
 * preorders table never had a row (checkout_shop_uses(CHECKOUT_PREORDERS))
 * runs none of this.
 *
 * Locking rules.  A preorders row is locked (FOR NO KEY UPDATE) only by
 * whoever holds its product's row: a checkout, after all its product,
 * slot and location locks, in ascending product id order; a restock or a
 * cancel, after shop_lock_stock() or shop_lock_products().  So a wait for
 * it is never part of a cycle, and a checkout never overtakes an open
 * preorder: a restock fills open preorders under the product's lock before
 * any of its units goes on sale.
 *
 * Memory rules.  Everything lives in the SPI procedure context of the call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

#include "preorders.h"
#include "statements.h"


/* The statements of preorders (statements.h), each run by the function that needs it */
typedef enum PreordersStatementId
{
	STMT_PREORDER_ROOM,
	STMT_LOCK_PREORDER,
	STMT_WRITE_PREORDERS,
	NUM_STATEMENTS
} PreordersStatementId;

static Statement statements[NUM_STATEMENTS] = {
	/*
	 * Preorders (preorders.c): the lines of customer $1 among products $2
	 * whose buyer accepted a preorder of a product that takes them, and the
	 * room under its cap, on the snapshot ...
	 */
	[STMT_PREORDER_ROOM] = {
		.what = "reading the preorders",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 2,
		.argtypes = {INT8OID, INT8ARRAYOID},
		.sql = "SELECT c.product_id,"
		"       po.max_preorders OPERATOR(pg_catalog.-) po.open_preorders"
		"  FROM %1$s.cart_items AS c"
		"  JOIN %1$s.preorders AS po ON po.product_id OPERATOR(pg_catalog.=) c.product_id"
		" WHERE c.customer_id OPERATOR(pg_catalog.=) $1"
		"   AND c.accept_preorder"
		"   AND c.product_id OPERATOR(pg_catalog.=) ANY ($2)"
	},

	/* ... the room under product $1's cap, its row locked ... */
	[STMT_LOCK_PREORDER] = {
		.what = "locking a preorder",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "SELECT po.max_preorders OPERATOR(pg_catalog.-) po.open_preorders"
		"  FROM %1$s.preorders AS po"
		" WHERE po.product_id OPERATOR(pg_catalog.=) $1"
		"   FOR NO KEY UPDATE"
	},

	/* ... and the units $3 of products $2 preordered by order $1 */
	[STMT_WRITE_PREORDERS] = {
		.what = "writing the preorders",
		.since = SINCE_1_2,
		.ok = SPI_OK_UPDATE,
		.nargs = 3,
		.argtypes = {INT8OID, INT8ARRAYOID, INT4ARRAYOID},
		.sql = "WITH l AS ("
		"  SELECT * FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3))"
		"         AS l(product_id, preordered)"
		"), lines AS ("
		"  UPDATE %1$s.order_items AS oi"
		"     SET preordered_quantity = l.preordered"
		"    FROM l"
		"   WHERE oi.order_id OPERATOR(pg_catalog.=) $1"
		"     AND oi.product_id OPERATOR(pg_catalog.=) l.product_id"
		")"
		"UPDATE %1$s.preorders AS po"
		"   SET open_preorders = po.open_preorders OPERATOR(pg_catalog.+) l.preordered"
		"  FROM l"
		" WHERE po.product_id OPERATOR(pg_catalog.=) l.product_id"
	},

};

/*
 * Read, on the snapshot, which of these lines of the customer accept a
 * preorder of a product that takes them, and the room under each cap
 * (STMT_PREORDER_ROOM); return the rows
 */
static uint64
read_preorder_room(int64 customer_id, const CartLine *lines, int nlines)
{
	Datum	   *ids = palloc(sizeof(Datum) * nlines);
	Datum		args[2];

	for (int i = 0; i < nlines; i++)
		ids[i] = Int64GetDatum(lines[i].product_id);
	args[0] = Int64GetDatum(customer_id);
	args[1] = stmt_bigint_array(ids, nlines);
	return stmt_execute(&statements[STMT_PREORDER_ROOM], args, NULL, 0);
}

/*
 * Mark the lines of the last STMT_PREORDER_ROOM result, with their room.
 * A line of a bundle's part is never preordered (a bundle sells only while
 * every part is there, bundles.c), even when the part is on its own in
 * the cart too.
 */
static void
mark_preorderable(CartLine *lines, int nlines, uint64 nrows)
{
	for (uint64 r = 0; r < nrows; r++)
	{
		int64		product_id = DatumGetInt64(stmt_value(r, 1));

		for (int i = 0; i < nlines; i++)
			if (lines[i].product_id == product_id && lines[i].bundle.of == NULL)
			{
				lines[i].pre.preorderable = true;
				lines[i].pre.preorder_room = Max(DatumGetInt32(stmt_value(r, 2)), 0);
			}
	}
}

/*
 * Mark the cart's lines that accept a preorder of a product that takes
 * them (read on the snapshot, after the cart's lines were locked)
 */
void
preorders_find_lines(int64 customer_id, CartLine *lines, int nlines)
{
	if (nlines == 0 || !checkout_shop_uses(CHECKOUT_PREORDERS))
		return;
	mark_preorderable(lines, nlines, read_preorder_room(customer_id, lines, nlines));
}

/*
 * Fail fast with preorders: of the short lines of the snapshot (their stock
 * over every location), keep those the room under their product's cap
 * cannot make up either, marked preorderable when the buyer accepted a
 * preorder (for the message); return how many are kept
 */
int
preorders_drop_served_lines(int64 customer_id, CartLine *lines, int nlines)
{
	int			nshort = 0;

	if (nlines == 0 || !checkout_shop_uses(CHECKOUT_PREORDERS))
		return nlines;
	mark_preorderable(lines, nlines, read_preorder_room(customer_id, lines, nlines));
	for (int i = 0; i < nlines; i++)
		if (lines[i].stock + (lines[i].pre.preorderable ? lines[i].pre.preorder_room : 0) <
			lines[i].quantity)
			lines[nshort++] = lines[i];
	return nshort;
}

/*
 * Under the checkout's locks: for each line that accepts a preorder and
 * that its stock on hand cannot serve, lock its product's preorders row and
 * preorder what the stock lacks if the room under the cap holds it (the
 * stock on hand all goes to the line: a line of a product that is not
 * located is served from its row and slots here; a located one by the
 * allocation, of its units less those preordered); otherwise keep the room
 * for the SH001 message.  Return whether any unit was preordered.
 */
bool
preorders_take(CheckoutCall *call, CartLine *lines, int nlines, SlotTakes *takes)
{
	bool		any = false;

	for (int i = 0; i < nlines; i++)
	{
		CartLine   *line = &lines[i];
		Datum		args[1] = {Int64GetDatum(line->product_id)};

		if (!line->pre.preorderable || line->stock >= line->quantity)
			continue;
		checkout_lock_step(call, "locking the preorders of product", line->product_id);
		if (stmt_execute(&statements[STMT_LOCK_PREORDER], args, NULL, 1) == 0)
		{
			/* its preorders ended since the snapshot */
			line->pre.preorderable = false;
			checkout_lock_step(call, NULL, 0);
			continue;
		}
		checkout_lock_step(call, NULL, 0);
		line->pre.preorder_room = Max(DatumGetInt32(stmt_value(0, 1)), 0);
		if (line->stock + line->pre.preorder_room < line->quantity)
			continue;
		line->pre.preordered = line->quantity - (int32) line->stock;
		any = true;
		if (!line->loc.located)
			stock_serve_from_row_and_slots(line, (int32) line->stock, takes);
	}
	return any;
}

/* Record the units the lines preordered, for order order_id */
void
preorders_write(int64 order_id, const CartLine *lines, int nlines)
{
	Datum	   *ids = palloc(sizeof(Datum) * nlines);
	Datum	   *units = palloc(sizeof(Datum) * nlines);
	int			n = 0;
	Datum		args[3];

	for (int i = 0; i < nlines; i++)
		if (lines[i].pre.preordered > 0)
		{
			ids[n] = Int64GetDatum(lines[i].product_id);
			units[n++] = Int32GetDatum(lines[i].pre.preordered);
		}
	if (n == 0)
		return;
	args[0] = Int64GetDatum(order_id);
	args[1] = stmt_bigint_array(ids, n);
	args[2] = stmt_int_array(units, n);
	if (stmt_execute(&statements[STMT_WRITE_PREORDERS], args, NULL, 0) != (uint64) n)
		elog(ERROR, "checkout: recording the preorders of order %lld updated too few",
			 (long long) order_id);
}
