/*-------------------------------------------------------------------------
 *
 * bundles.c
 *		A cart's bundles sold as their parts (since 1.3): a bundle is a
 *		product with parts (bundle_parts) and no stock of its own; its cart
 *		line stays the order's line (its price, limits, voucher share),
 *		while the stock its units take is its parts'.
 *
 * The cart's lines become stock lines: each product once, in ascending
 * product id order (the global lock order), its quantity what the cart
 * needs of it on its own and as a part of its bundles together, so that a
 * part is locked once, whatever bundles share it.  The driver serves,
 * checks and decrements the stock lines as any line; its write statement
 * writes the cart's lines, and the parts each bundle took (BundleParts, to
 * order_item_parts).
 *
 * A part's units are allocated over locations as any line's
 * (locations.c): order_item_allocations holds where an order's units of a
 * product came from, its own line's and its bundles' together.  A part is
 * never preordered (preorders.c).  Fail fast reads the same stock lines
 * (stock.c).
 *
 * Locking rules.  None here: the parts are read on the snapshot; the
 * driver locks the stock lines.
 *
 * Memory rules.  Everything lives in the SPI procedure context of the call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "bundles.h"
#include "statements.h"

typedef enum BundlesStatementId
{
	STMT_PARTS,
	NUM_STATEMENTS
} BundlesStatementId;

static Statement statements[NUM_STATEMENTS] = {
	/*
	 * The parts of the bundles among products $1, on the snapshot: bundle,
	 * part, quantity per bundle, the bundle's name and price, the part's last
	 * stock slot's number (NULL: none) and the most any bundle takes of it;
	 * then, with a NULL bundle, each product among $1 that is a part of some
	 * bundle, with that most (what it must keep for its bundles to sell).
	 * Driven by $1's elements, each probing the keys (lateral): a generic
	 * plan of "= ANY ($1)" scans the whole of products and bundle_parts.
	 */
	[STMT_PARTS] = {
		.what = "reading the bundles' parts",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 1,
		.argtypes = {INT8ARRAYOID},
		.sql = "SELECT r.* FROM pg_catalog.unnest($1) AS c(id)"
		" CROSS JOIN LATERAL ("
		"  SELECT bp.bundle_id, bp.product_id, bp.quantity, b.name, b.price_cents,"
		"         (SELECT pg_catalog.max(s.slot) FROM %1$s.stock_slots AS s"
		"           WHERE s.product_id OPERATOR(pg_catalog.=) bp.product_id),"
		"         (SELECT pg_catalog.max(x.quantity) FROM %1$s.bundle_parts AS x"
		"           WHERE x.product_id OPERATOR(pg_catalog.=) bp.product_id)"
		"    FROM %1$s.products AS b"
		"    JOIN %1$s.bundle_parts AS bp ON bp.bundle_id OPERATOR(pg_catalog.=) b.id"
		"   WHERE b.id OPERATOR(pg_catalog.=) c.id"
		"  UNION ALL"
		"  SELECT NULL, c.id, NULL, NULL, NULL, NULL, pg_catalog.max(x.quantity)"
		"    FROM %1$s.bundle_parts AS x"
		"   WHERE x.product_id OPERATOR(pg_catalog.=) c.id"
		"  HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0) AS r"
		" ORDER BY 1 NULLS LAST, 2"
	},
};

/* The stock line of product_id among lines[0..n), or NULL */
static CartLine *
stock_line(CartLine *lines, int n, int64 product_id)
{
	for (int i = 0; i < n; i++)
		if (lines[i].product_id == product_id)
			return &lines[i];
	return NULL;
}

/* Add units times per_unit to a stock line's quantity, raising 22003 past int */
static void
add_units(CartLine *line, int32 units, int32 per_unit)
{
	int32		quantity;

	if (pg_mul_s32_overflow(units, per_unit, &quantity) ||
		pg_add_s32_overflow(line->quantity, quantity, &line->quantity))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("quantity of product %lld is out of range", (long long) line->product_id),
				 errdetail("The cart's bundles need more than %d units of it.", PG_INT32_MAX)));
}

static int
by_product_id(const void *a, const void *b)
{
	int64		x = ((const CartLine *) a)->product_id;
	int64		y = ((const CartLine *) b)->product_id;

	return (x > y) - (x < y);
}

/*
 * When the cart (lines, in product id order) holds bundles: mark their
 * lines, give them their name and price, and return true with the stock
 * lines (*stock_lines: the cart's other lines and every part, each product
 * once, quantities added up, in product id order) and the parts taken.
 * Otherwise return false with the lines as they were, but for what a line
 * that is some bundle's part must keep for its bundles (bundle.keep).
 */
bool
bundles_expand(CartLine *lines, int nlines, CartLine **stock_lines, int *nstock,
			   BundleParts *parts)
{
	Datum	   *ids;
	Datum		args[1];
	uint64		nrows;
	CartLine   *stock;
	int			n = 0;

	memset(parts, 0, sizeof(BundleParts));
	if (!checkout_shop_uses(CHECKOUT_BUNDLES))
		return false;
	ids = palloc(sizeof(Datum) * nlines);
	for (int i = 0; i < nlines; i++)
		ids[i] = Int64GetDatum(lines[i].product_id);
	args[0] = stmt_bigint_array(ids, nlines);
	nrows = stmt_execute(&statements[STMT_PARTS], args, NULL, 0);
	if (nrows == 0)
		return false;

	/* the bundles' own lines, and the parts they take */
	parts->bundle_ids = palloc(sizeof(Datum) * nrows);
	parts->product_ids = palloc(sizeof(Datum) * nrows);
	parts->quantities = palloc(sizeof(Datum) * nrows);
	stock = palloc0(sizeof(CartLine) * (nlines + nrows));
	for (uint64 r = 0; r < nrows; r++)
	{
		bool		no_bundle;
		int64		bundle_id;
		int64		part_id = DatumGetInt64(stmt_value(r, 2));
		int32		per_bundle;
		CartLine   *bundle;
		CartLine   *part;
		bool		no_slots;
		Datum		last_slot;

		(void) SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &no_bundle);
		if (no_bundle)
		{
			/* a line of the cart that is some bundle's part (rows come last) */
			stock_line(lines, nlines, part_id)->bundle.keep =
				DatumGetInt32(stmt_value(r, 7));
			continue;
		}
		bundle_id = DatumGetInt64(stmt_value(r, 1));
		per_bundle = DatumGetInt32(stmt_value(r, 3));
		bundle = stock_line(lines, nlines, bundle_id);

		bundle->bundle.is_bundle = true;
		bundle->name = TextDatumGetCString(stmt_value(r, 4));
		bundle->unit_price_cents = DatumGetInt64(stmt_value(r, 5));
		parts->bundle_ids[parts->n] = Int64GetDatum(bundle_id);
		parts->product_ids[parts->n] = Int64GetDatum(part_id);
		parts->quantities[parts->n] = Int32GetDatum(per_bundle);
		parts->n++;

		if ((part = stock_line(stock, n, part_id)) == NULL)
		{
			part = &stock[n++];
			part->product_id = part_id;
			last_slot = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
									  6, &no_slots);
			part->nslots = no_slots ? 0 : DatumGetInt32(last_slot) + 1;
			part->bundle.keep = DatumGetInt32(stmt_value(r, 7));
		}
		if (part->bundle.of == NULL)
			part->bundle.of = bundle->name;
		add_units(part, bundle->quantity, per_bundle);
	}

	if (parts->n == 0)
		return false;			/* no bundle: parts on their own, marked */

	/* the cart's other lines: a product there on its own too adds up */
	for (int i = 0; i < nlines; i++)
	{
		CartLine   *line;

		if (lines[i].bundle.is_bundle)
			continue;
		if ((line = stock_line(stock, n, lines[i].product_id)) == NULL)
		{
			line = &stock[n++];
			*line = lines[i];
			line->bundle.of = NULL;
			continue;
		}
		line->limited = lines[i].limited;
		add_units(line, lines[i].quantity, 1);
	}
	qsort(stock, n, sizeof(CartLine), by_product_id);
	*stock_lines = stock;
	*nstock = n;
	return true;
}
