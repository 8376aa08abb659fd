/*-------------------------------------------------------------------------
 *
 * locations.c
 *		A checkout of products stocked in several locations (since 1.2):
 *		which lines are, their locations' rows locked, the units allocated
 *		to locations, and the allocations written with the order.
 *
 * The default location (1) holds products.stock and the product's stock
 * slots, exactly as before locations; every other location's stock of a
 * product is a location_stock row.  A shop whose location_stock has never
 * had a row (checkout_shop_uses(CHECKOUT_LOCATIONS)) runs none of this.
 *
 * Allocation, under the locks that decrement the stock: first one location
 * that can serve the whole cart, the preferred one by priority (a lower
 * number first), then the one with most stock of the cart, then the lower
 * id; otherwise line by line, the location that can serve the whole line
 * by the same order (most stock of the line); a line is split over
 * locations only when no single one can serve it, taking from them in
 * that order.  A line is short (SH001) only when all its locations
 * together are: its stock is their sum.  A line of a product with no other
 * location can only come from the default: then so must the whole cart to
 * come from one location.
 *
 * Locking rules.  A located line locks its product's row and all its stock
 * slots (never one free slot: the default's stock must be known whole),
 * then its location_stock rows in location id order, in the checkout's
 * product order (checkout.c).  Whoever locks a product's location rows
 * holds the product's row first (shop_lock_stock(), shop_lock_products()
 * in SQL), so a wait for a location row is never part of a cycle.  A
 * location retired meanwhile: shop_retire_location() locks its rows FOR
 * UPDATE before it retires it, so it waits for a checkout that holds them.
 *
 * Memory rules.  Everything lives in the SPI procedure context of the call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "locations.h"
#include "statements.h"


#define LOCATED_STOCK_SQL \
	"SELECT ls.product_id, pg_catalog.sum(ls.stock)::pg_catalog.int8," \
	"       pg_catalog.min(l.priority)," \
	"       (SELECT d.priority FROM %1$s.locations AS d" \
	"         WHERE d.id OPERATOR(pg_catalog.=) 1)" \
	"  FROM %1$s.location_stock AS ls" \
	"  JOIN %1$s.locations AS l ON l.id OPERATOR(pg_catalog.=) ls.location_id" \
	" WHERE ls.product_id OPERATOR(pg_catalog.=) ANY ($1)" \
	"   AND l.retired_at IS NULL" \
	" GROUP BY ls.product_id"

/* The statements of locations (statements.h), each run by the function that needs it */
typedef enum LocationsStatementId
{
	STMT_LOCATED_STOCK,
	STMT_LOCATED_STOCK_NOW,
	STMT_LOCK_LOCATIONS,
	STMT_WRITE_ALLOCATIONS,
	NUM_STATEMENTS
} LocationsStatementId;

static Statement statements[NUM_STATEMENTS] = {
	/*
	 * Locations (locations.c): the stock of the products $1 in locations
	 * other than the default and not retired, on the snapshot (which lines
	 * are located; fail fast counts it), the best priority among those
	 * locations and the default's ...
	 */
	[STMT_LOCATED_STOCK] = {
		.what = "reading the locations' stock",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 1,
		.argtypes = {INT8ARRAYOID},
		.sql = LOCATED_STOCK_SQL
	},

	/*
	 * ... the same on a new snapshot (under READ COMMITTED): what a line
	 * short under the locks reads, where stock moved while it waited
	 */
	[STMT_LOCATED_STOCK_NOW] = {
		.what = "reading the locations' stock",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8ARRAYOID},
		.sql = LOCATED_STOCK_SQL
	},

	/*
	 * ... the location rows of product $1, locked in location order, with
	 * their priority and the default location's ...
	 */
	[STMT_LOCK_LOCATIONS] = {
		.what = "locking the locations' stock",
		.since = SINCE_1_2,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "SELECT ls.location_id, ls.stock, ls.ctid, l.priority,"
		"       (SELECT d.priority FROM %1$s.locations AS d"
		"         WHERE d.id OPERATOR(pg_catalog.=) 1)"
		"  FROM %1$s.location_stock AS ls"
		"  JOIN %1$s.locations AS l ON l.id OPERATOR(pg_catalog.=) ls.location_id"
		" WHERE ls.product_id OPERATOR(pg_catalog.=) $1"
		"   AND l.retired_at IS NULL"
		" ORDER BY ls.location_id"
		"   FOR NO KEY UPDATE OF ls"
	},

	/*
	 * ... and, once the order $1 is written, $3 taken from each location row
	 * locked at ctid $2, and the allocations ($4 product, $5 location, $6
	 * units) recorded
	 */
	[STMT_WRITE_ALLOCATIONS] = {
		.what = "writing the allocations",
		.since = SINCE_1_2,
		.ok = SPI_OK_INSERT,
		.nargs = 6,
		.argtypes = {INT8OID, TIDARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID},
		.sql = "WITH taken AS ("
		"  UPDATE %1$s.location_stock AS ls"
		"     SET stock = ls.stock OPERATOR(pg_catalog.-)"
		"         ($3)[pg_catalog.array_position($2, ls.ctid)]"
		"   WHERE ls.ctid OPERATOR(pg_catalog.=) ANY ($2)"
		")"
		"INSERT INTO %1$s.order_item_allocations"
		"       (order_id, product_id, location_id, quantity)"
		"SELECT $1, a.product_id, a.location_id, a.quantity"
		"  FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5),"
		"                  pg_catalog.unnest($6)) AS a(product_id, location_id, quantity)"
	},

};

/* The default location's id: its stock is products.stock and the slots */
#define DEFAULT_LOCATION 1

/*
 * Read, with stmt (STMT_LOCATED_STOCK on the snapshot, or
 * STMT_LOCATED_STOCK_NOW on a new one), the stock the lines' products hold
 * in locations other than the default and not retired (product id, their
 * stock, their best priority, the default's); return the rows
 */
static uint64
read_located_stock(const CartLine *lines, int nlines, LocationsStatementId stmt)
{
	Datum	   *ids = palloc(sizeof(Datum) * nlines);
	Datum		args[1];

	for (int i = 0; i < nlines; i++)
		ids[i] = Int64GetDatum(lines[i].product_id);
	args[0] = stmt_bigint_array(ids, nlines);
	return stmt_execute(&statements[stmt], args, NULL, 0);
}

/*
 * Mark the lines whose products have stock rows in other locations (not
 * retired), on the snapshot; return whether any has.  A product stocked
 * elsewhere only after this is located only if its line falls short under
 * the locks (locations_locate_moved_lines).
 *
 * The hot product's shortcut: when the cart has one such line and the
 * default location is preferred to every other location of its product
 * (a strictly lower priority number), the line is served as if it were
 * not located (maybe_located: from one free stock slot, or its row)
 * whenever the default can serve it, which is then exactly what the rules
 * choose: every other line can only come from the default, and the
 * default, preferred, serves the whole cart.  Only when the default falls
 * short under the locks is it located (locations_locate_short_lines), and no single
 * location can serve the whole cart then.
 */
bool
locations_find_lines(CartLine *lines, int nlines)
{
	uint64		nrows;
	int			nlocated = 0;
	CartLine   *only = NULL;
	bool		default_preferred = false;

	if (!checkout_shop_uses(CHECKOUT_LOCATIONS))
		return false;
	nrows = read_located_stock(lines, nlines, STMT_LOCATED_STOCK);
	for (uint64 r = 0; r < nrows; r++)
	{
		int64		product_id = DatumGetInt64(stmt_value(r, 1));

		for (int i = 0; i < nlines; i++)
			if (lines[i].product_id == product_id)
			{
				lines[i].loc.located = true;
				only = &lines[i];
				nlocated++;
				default_preferred = DatumGetInt32(stmt_value(r, 4)) <
					DatumGetInt32(stmt_value(r, 3));
			}
	}
	if (nlocated == 1 && default_preferred)
	{
		only->loc.located = false;
		only->loc.maybe_located = true;
		return false;
	}
	return nlocated > 0;
}

/*
 * The shortcut's line, served as if not located, that the default cannot
 * serve under the locks (its row, or its row and all its slots, are locked
 * by now): lock its locations and locate it.  Return whether it was.
 */
bool
locations_locate_short_lines(CheckoutCall *call, CartLine *lines, int nlines)
{
	bool		any = false;

	for (int i = 0; i < nlines; i++)
		if (lines[i].loc.maybe_located && lines[i].stock < lines[i].quantity &&
			ItemPointerIsValid(&lines[i].ctid))
		{
			lines[i].loc.located = any = true;
			locations_lock_line(call, &lines[i], false);
		}
	return any;
}

/*
 * Short lines, under the locks, of products this checkout did not take for
 * located when it started: stock moved meanwhile to another location (a
 * first location_stock row of the product, made while this checkout waited
 * for the product's row) is stock on sale.  Read their locations again (a
 * new snapshot), lock and locate the lines that have some now.  Return
 * whether any was.
 */
bool
locations_locate_moved_lines(CheckoutCall *call, CartLine *lines, int nlines)
{
	bool	   *candidate = palloc0(sizeof(bool) * nlines);
	bool	   *moved = palloc0(sizeof(bool) * nlines);
	bool		any = false;
	uint64		nrows;

	/* short lines whose rows are held, not taken for located at the start */
	for (int i = 0; i < nlines; i++)
		any |= candidate[i] = !lines[i].loc.located && !lines[i].loc.maybe_located &&
			lines[i].stock < lines[i].quantity &&
			ItemPointerIsValid(&lines[i].ctid);
	if (!any || !checkout_shop_uses_now(CHECKOUT_LOCATIONS))
		return false;
	nrows = read_located_stock(lines, nlines, STMT_LOCATED_STOCK_NOW);
	for (uint64 r = 0; r < nrows; r++)
	{
		int64		product_id = DatumGetInt64(stmt_value(r, 1));

		for (int i = 0; i < nlines; i++)
			moved[i] |= candidate[i] && lines[i].product_id == product_id;
	}

	/* SPI_tuptable is not used beyond this point: locking runs statements */
	any = false;
	for (int i = 0; i < nlines; i++)
		if (moved[i])
		{
			lines[i].loc.located = any = true;
			locations_lock_line(call, &lines[i], false);
		}
	return any;
}

/*
 * Fail fast with locations: the short lines of the snapshot (product id,
 * quantity, name and the default's stock) counted again with the stock of
 * their other locations, on the snapshot too.  Keep in lines only those
 * still short, with the stock of all locations; return how many.
 */
int
locations_drop_served_lines(CartLine *lines, int nlines)
{
	uint64		nrows;
	int			nshort = 0;

	if (nlines == 0 || !checkout_shop_uses_now(CHECKOUT_LOCATIONS))
		return nlines;
	nrows = read_located_stock(lines, nlines, STMT_LOCATED_STOCK);
	for (uint64 r = 0; r < nrows; r++)
	{
		int64		product_id = DatumGetInt64(stmt_value(r, 1));

		for (int i = 0; i < nlines; i++)
			if (lines[i].product_id == product_id)
				lines[i].stock += DatumGetInt64(stmt_value(r, 2));
	}
	for (int i = 0; i < nlines; i++)
		if (lines[i].stock < lines[i].quantity)
			lines[nshort++] = lines[i];
	return nshort;
}

/*
 * Lock a located line's product: its row (unless lock_products() locked it
 * already), all its slots, then its location rows in location order; set
 * line->stock to what all of them hold.  row_current: the row, when locked
 * already, is as it was read under its lock (lock_products() just now);
 * else it is read again (a reclaim may have changed it since).
 */
void
locations_lock_line(CheckoutCall *call, CartLine *line, bool row_current)
{
	Datum		args[1] = {Int64GetDatum(line->product_id)};
	uint64		nrows;
	int32		default_priority = 0;

	if (ItemPointerIsValid(&line->ctid) && !row_current)
		line->stock = stock_read_row_again(line);
	stock_lock_row_and_slots(call, line, ItemPointerIsValid(&line->ctid));

	checkout_lock_step(call, "locking the locations' stock of product", line->product_id);
	nrows = stmt_execute(&statements[STMT_LOCK_LOCATIONS], args, NULL, 0);
	checkout_lock_step(call, NULL, 0);
	line->loc.nlocations = (int32) nrows;
	line->loc.location_ids = palloc(sizeof(int64) * (nrows + 1));
	line->loc.location_stock = palloc(sizeof(int32) * (nrows + 1));
	line->loc.location_priority = palloc(sizeof(int32) * (nrows + 1));
	line->loc.location_ctids = palloc(sizeof(ItemPointerData) * (nrows + 1));
	line->loc.location_take = palloc0(sizeof(int32) * (nrows + 1));
	line->loc.default_take = 0;
	line->stock = line->held.default_stock;
	for (uint64 r = 0; r < nrows; r++)
	{
		line->loc.location_ids[r] = DatumGetInt64(stmt_value(r, 1));
		line->loc.location_stock[r] = DatumGetInt32(stmt_value(r, 2));
		line->loc.location_ctids[r] = *(ItemPointer) DatumGetPointer(stmt_value(r, 3));
		line->loc.location_priority[r] = DatumGetInt32(stmt_value(r, 4));
		default_priority = DatumGetInt32(stmt_value(r, 5));
		line->stock += line->loc.location_stock[r];
	}

	/* The default location is the last candidate of the arrays */
	line->loc.location_ids[nrows] = DEFAULT_LOCATION;
	line->loc.location_stock[nrows] = (int32) Min(line->held.default_stock, PG_INT32_MAX);
	line->loc.location_priority[nrows] = default_priority;
	ItemPointerSetInvalid(&line->loc.location_ctids[nrows]);
}

/* What location id holds of the line (0: nothing), and its index */
static int32
stock_at(const CartLine *line, int64 location_id, int *index)
{
	if (!line->loc.located)
	{
		*index = -1;
		return location_id == DEFAULT_LOCATION ? (int32) Min(line->stock, PG_INT32_MAX) : 0;
	}
	for (int k = 0; k <= line->loc.nlocations; k++)
		if (line->loc.location_ids[k] == location_id)
		{
			*index = k;
			return line->loc.location_stock[k];
		}
	*index = -1;
	return 0;
}

/* Whether candidate (priority, stock, id) a is preferred to b */
static bool
preferred(int32 priority_a, int64 stock_a, int64 id_a,
		  int32 priority_b, int64 stock_b, int64 id_b)
{
	if (priority_a != priority_b)
		return priority_a < priority_b;
	if (stock_a != stock_b)
		return stock_a > stock_b;
	return id_a < id_b;
}

/* Take amount of a located line from its candidate k */
static void
take_at(CartLine *line, int k, int32 amount)
{
	if (line->loc.location_ids[k] == DEFAULT_LOCATION)
		line->loc.default_take += amount;
	else
		line->loc.location_take[k] += amount;
}

/*
 * The location that serves the whole cart, by preference, or 0 when none
 * can.  Only the default can serve a line that is not located.
 */
static int64
whole_cart_location(const CartLine *lines, int nlines)
{
	const CartLine *first = NULL;
	int64		best = 0;
	int32		best_priority = 0;
	int64		best_stock = 0;

	for (int i = 0; i < nlines; i++)
		if (lines[i].loc.located)
		{
			first = &lines[i];
			break;
		}
	if (first == NULL)
		return DEFAULT_LOCATION;

	/* Every location of the cart is one of the first located line's */
	for (int k = 0; k <= first->loc.nlocations; k++)
	{
		int64		candidate = first->loc.location_ids[k];
		int64		cart_stock = 0;
		bool		serves = true;

		for (int i = 0; i < nlines && serves; i++)
		{
			int			index;
			int32		held = stock_at(&lines[i], candidate, &index);

			serves = held >= lines[i].quantity - lines[i].pre.preordered;
			cart_stock += held;
		}
		if (serves && (best == 0 ||
					   preferred(first->loc.location_priority[k], cart_stock, candidate,
								 best_priority, best_stock, best)))
		{
			best = candidate;
			best_priority = first->loc.location_priority[k];
			best_stock = cart_stock;
		}
	}
	return best;
}

/*
 * Allocate every located line's units to its locations (the rules in the
 * header comment), and serve the default's part from the product's row and
 * slots.  Every line is known to be served by its locations together
 * (check_stock ran).  A line that is not located keeps what lock_products
 * or slots_take gave it: all from the default.
 */
void
locations_allocate(CartLine *lines, int nlines, SlotTakes *takes)
{
	int64		whole = whole_cart_location(lines, nlines);

	for (int i = 0; i < nlines; i++)
	{
		CartLine   *line = &lines[i];
		int			best = -1;
		int32		need = line->quantity - line->pre.preordered;
		bool	   *used;

		if (!line->loc.located)
			continue;
		if (whole != 0)
		{
			(void) stock_at(line, whole, &best);
			take_at(line, best, need);
			stock_serve_from_row_and_slots(line, line->loc.default_take, takes);
			continue;
		}

		/* The preferred location that holds the whole line */
		for (int k = 0; k <= line->loc.nlocations; k++)
			if (line->loc.location_stock[k] >= need &&
				(best < 0 ||
				 preferred(line->loc.location_priority[k], line->loc.location_stock[k],
						   line->loc.location_ids[k], line->loc.location_priority[best],
						   line->loc.location_stock[best], line->loc.location_ids[best])))
				best = k;
		if (best >= 0)
		{
			take_at(line, best, need);
			stock_serve_from_row_and_slots(line, line->loc.default_take, takes);
			continue;
		}

		/* None: split, from the preferred location on */
		used = palloc0(sizeof(bool) * (line->loc.nlocations + 1));
		while (need > 0)
		{
			int32		take;

			best = -1;
			for (int k = 0; k <= line->loc.nlocations; k++)
				if (!used[k] && line->loc.location_stock[k] > 0 &&
					(best < 0 ||
					 preferred(line->loc.location_priority[k], line->loc.location_stock[k],
							   line->loc.location_ids[k], line->loc.location_priority[best],
							   line->loc.location_stock[best], line->loc.location_ids[best])))
					best = k;
			if (best < 0)
				elog(ERROR, "checkout: product %lld is short of its locations' stock",
					 (long long) line->product_id);
			used[best] = true;
			take = Min(line->loc.location_stock[best], need);
			take_at(line, best, take);
			need -= take;
		}
		stock_serve_from_row_and_slots(line, line->loc.default_take, takes);
	}
}

/*
 * Take the located lines' units from their location rows and record where
 * every unit of those lines came from (the default's part included), for
 * order order_id
 */
void
locations_write_allocations(int64 order_id, const CartLine *lines, int nlines)
{
	int			size = 0;
	int			ntakes = 0;
	int			nallocations = 0;
	Datum	   *ctids;
	Datum	   *amounts;
	Datum	   *product_ids;
	Datum	   *location_ids;
	Datum	   *quantities;
	Datum		args[6];

	for (int i = 0; i < nlines; i++)
		if (lines[i].loc.located)
			size += lines[i].loc.nlocations + 1;
	if (size == 0)
		return;
	ctids = palloc(sizeof(Datum) * size);
	amounts = palloc(sizeof(Datum) * size);
	product_ids = palloc(sizeof(Datum) * size);
	location_ids = palloc(sizeof(Datum) * size);
	quantities = palloc(sizeof(Datum) * size);
	for (int i = 0; i < nlines; i++)
	{
		const CartLine *line = &lines[i];

		if (!line->loc.located)
			continue;
		for (int k = 0; k <= line->loc.nlocations; k++)
		{
			int32		take = line->loc.location_ids[k] == DEFAULT_LOCATION ?
			line->loc.default_take : line->loc.location_take[k];

			if (take == 0)
				continue;
			if (line->loc.location_ids[k] != DEFAULT_LOCATION)
			{
				ctids[ntakes] = PointerGetDatum(&line->loc.location_ctids[k]);
				amounts[ntakes++] = Int32GetDatum(take);
			}
			product_ids[nallocations] = Int64GetDatum(line->product_id);
			location_ids[nallocations] = Int64GetDatum(line->loc.location_ids[k]);
			quantities[nallocations++] = Int32GetDatum(take);
		}
	}
	args[0] = Int64GetDatum(order_id);
	args[1] = stmt_tid_array(ctids, ntakes);
	args[2] = stmt_int_array(amounts, ntakes);
	args[3] = stmt_bigint_array(product_ids, nallocations);
	args[4] = stmt_bigint_array(location_ids, nallocations);
	args[5] = stmt_int_array(quantities, nallocations);
	if (stmt_execute(&statements[STMT_WRITE_ALLOCATIONS], args, NULL, 0) != (uint64) nallocations)
		elog(ERROR, "checkout: writing the allocations of order %lld wrote too few",
			 (long long) order_id);
}
