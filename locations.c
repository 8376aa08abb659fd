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
 * A location's stock may be split into slots (location_stock_slots, 1.3),
 * as the default's is: the location then holds its row and its slots.
 *
 * Locking rules.  A located line locks its product's row and all its stock
 * slots (never one free slot: the default's stock must be known whole),
 * then its location_stock rows in location id order, then its locations'
 * slots in location and slot order, in the checkout's product order
 * (checkout.c).  Whoever locks a product's location rows holds the
 * product's row first (shop_lock_stock(), shop_lock_products() in SQL), so
 * a wait for a location row is never part of a cycle.  The one exception
 * is the located hot product's fast path (locations_take_slot): a one-line
 * cart takes one free slot of the location the rules must choose, and
 * locks nothing else of the product; whoever waits for that slot holds
 * locks the slot's holder never asks for (the FOR KEY SHARE of its order's
 * foreign keys does not conflict with FOR NO KEY UPDATE).  A location
 * retired meanwhile: shop_retire_location() locks its rows FOR UPDATE,
 * then its slots, before it retires it, so it waits for a checkout that
 * holds them.
 *
 * Memory rules.  Everything lives in the SPI procedure context of the call,
 * but the located hot products a backend found (hot_located, a small hash
 * table in TopMemoryContext, emptied when what it stands on changed).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

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

/*
 * The same, where a location's stock may be split into slots (1.3): a
 * location holds its row and its slots
 */
#define LOCATED_STOCK_SLOTS_SQL \
	"SELECT ls.product_id," \
	"       (pg_catalog.sum(ls.stock) OPERATOR(pg_catalog.+)" \
	"        COALESCE(pg_catalog.sum(sl.stock), 0))::pg_catalog.int8," \
	"       pg_catalog.min(l.priority)," \
	"       (SELECT d.priority FROM %1$s.locations AS d" \
	"         WHERE d.id OPERATOR(pg_catalog.=) 1)" \
	"  FROM %1$s.location_stock AS ls" \
	"  JOIN %1$s.locations AS l ON l.id OPERATOR(pg_catalog.=) ls.location_id" \
	" CROSS JOIN LATERAL (" \
	"  SELECT pg_catalog.sum(s.stock) AS stock" \
	"    FROM %1$s.location_stock_slots AS s" \
	"   WHERE s.product_id OPERATOR(pg_catalog.=) ls.product_id" \
	"     AND s.location_id OPERATOR(pg_catalog.=) ls.location_id) AS sl" \
	" WHERE ls.product_id OPERATOR(pg_catalog.=) ANY ($1)" \
	"   AND l.retired_at IS NULL" \
	" GROUP BY ls.product_id"

/*
 * A slot of product $1 at location $5 (not retired) that holds at least
 * $2, numbered from $3 up to below $4 (as slots.c's SLOT_QUERY); the
 * product row is read, not locked
 */
#define LOCATION_SLOT_QUERY \
	"SELECT s.ctid, s.stock, p.name, p.price_cents" \
	"  FROM %1$s.location_stock_slots AS s" \
	"  JOIN %1$s.products AS p ON p.id OPERATOR(pg_catalog.=) s.product_id" \
	" WHERE s.product_id OPERATOR(pg_catalog.=) $1" \
	"   AND s.location_id OPERATOR(pg_catalog.=) $5" \
	"   AND s.slot OPERATOR(pg_catalog.>=) $3" \
	"   AND s.slot OPERATOR(pg_catalog.<) $4" \
	"   AND s.stock OPERATOR(pg_catalog.>=) $2" \
	"   AND (SELECT l.retired_at IS NULL FROM %1$s.locations AS l" \
	"         WHERE l.id OPERATOR(pg_catalog.=) $5)" \
	" ORDER BY s.slot" \
	" LIMIT 1" \
	"   FOR NO KEY UPDATE OF s"

/*
 * Record the allocations ($4 product, $5 location, $6 units) of order $1
 * (STMT_WRITE_ALLOCATIONS's last part)
 */
#define WRITE_ALLOCATIONS_SQL \
	"INSERT INTO %1$s.order_item_allocations" \
	"       (order_id, product_id, location_id, quantity)" \
	"SELECT $1, a.product_id, a.location_id, a.quantity" \
	"  FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5)," \
	"                  pg_catalog.unnest($6)) AS a(product_id, location_id, quantity)"

/* The same, once $3 is taken from each location row locked at ctid $2 */
#define TAKE_AND_WRITE_ALLOCATIONS_SQL \
	"WITH taken AS (" \
	"  UPDATE %1$s.location_stock AS ls" \
	"     SET stock = ls.stock OPERATOR(pg_catalog.-)" \
	"         ($3)[pg_catalog.array_position($2, ls.ctid)]" \
	"   WHERE ls.ctid OPERATOR(pg_catalog.=) ANY ($2)" \
	")" \
	WRITE_ALLOCATIONS_SQL

/* The statements of locations (statements.h), each run by the function that needs it */
typedef enum LocationsStatementId
{
	STMT_LOCATED_STOCK,
	STMT_LOCATED_STOCK_NOW,
	STMT_LOCATED_STOCK_SLOTS,
	STMT_LOCATED_LOCATIONS,
	STMT_LOCATED_STOCK_SLOTS_NOW,
	STMT_LOCK_LOCATIONS,
	STMT_LOCK_LOCATION_SLOTS,
	STMT_FREE_LOCATION_SLOT,
	STMT_WAIT_FOR_LOCATION_SLOT,
	STMT_TAKE_FROM_LOCATION_SLOT,
	STMT_TAKE_FROM_LOCATION_SLOTS,
	STMT_WRITE_ALLOCATIONS,
	STMT_WRITE_ONE_ALLOCATION,
	STMT_WRITE_ALLOCATIONS_ONLY,
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
	 * ... both where a location's stock may be in slots (1.3) ...
	 */
	[STMT_LOCATED_STOCK_SLOTS] = {
		.what = "reading the locations' stock",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.read_only = true,
		.nargs = 1,
		.argtypes = {INT8ARRAYOID},
		.sql = LOCATED_STOCK_SLOTS_SQL
	},

	/*
	 * ... which lines are located, where a location's stock may be in slots:
	 * the locations (not retired) of the products $1, each product's by
	 * priority then id (product id, priority, the default's, location id, its
	 * slots), for the located hot product's fast path; on a new snapshot
	 * (under READ COMMITTED), no older than the invalidations the backend
	 * took in, as what it remembers of the product must be (hot_located) ...
	 */
	[STMT_LOCATED_LOCATIONS] = {
		.what = "reading the locations' stock",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8ARRAYOID},
		.sql = "SELECT ls.product_id, l.priority,"
		"       (SELECT d.priority FROM %1$s.locations AS d"
		"         WHERE d.id OPERATOR(pg_catalog.=) 1),"
		"       ls.location_id,"
		"       (SELECT pg_catalog.count(*)::pg_catalog.int4"
		"          FROM %1$s.location_stock_slots AS s"
		"         WHERE s.product_id OPERATOR(pg_catalog.=) ls.product_id"
		"           AND s.location_id OPERATOR(pg_catalog.=) ls.location_id)"
		"  FROM %1$s.location_stock AS ls"
		"  JOIN %1$s.locations AS l ON l.id OPERATOR(pg_catalog.=) ls.location_id"
		" WHERE ls.product_id OPERATOR(pg_catalog.=) ANY ($1)"
		"   AND l.retired_at IS NULL"
		" ORDER BY ls.product_id, l.priority, ls.location_id"
	},

	[STMT_LOCATED_STOCK_SLOTS_NOW] = {
		.what = "reading the locations' stock",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8ARRAYOID},
		.sql = LOCATED_STOCK_SLOTS_SQL
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

	/* ... then its locations' slots (1.3), in location and slot order ... */
	[STMT_LOCK_LOCATION_SLOTS] = {
		.what = "locking the locations' stock slots",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.nargs = 1,
		.argtypes = {INT8OID},
		.sql = "SELECT s.location_id, s.ctid, s.stock"
		"  FROM %1$s.location_stock_slots AS s"
		" WHERE s.product_id OPERATOR(pg_catalog.=) $1"
		" ORDER BY s.location_id, s.slot"
		"   FOR NO KEY UPDATE OF s"
	},

	/*
	 * ... or, on the located hot product's fast path, the first free slot of
	 * the preferred location that holds the line (LOCATION_SLOT_QUERY) ...
	 */
	[STMT_FREE_LOCATION_SLOT] = {
		.what = "taking a stock slot of a location",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.nargs = 5,
		.argtypes = {INT8OID, INT4OID, INT4OID, INT4OID, INT8OID},
		.sql = LOCATION_SLOT_QUERY " SKIP LOCKED"
	},

	/* ... or the first that still holds it once this one waited for it ... */
	[STMT_WAIT_FOR_LOCATION_SLOT] = {
		.what = "waiting for a stock slot of a location",
		.since = SINCE_1_3,
		.ok = SPI_OK_SELECT,
		.nargs = 5,
		.argtypes = {INT8OID, INT4OID, INT4OID, INT4OID, INT8OID},
		.sql = LOCATION_SLOT_QUERY
	},

	/* ... and $2 taken from the slot locked at ctid $1 ... */
	[STMT_TAKE_FROM_LOCATION_SLOT] = {
		.what = "updating a stock slot of a location",
		.since = SINCE_1_3,
		.ok = SPI_OK_UPDATE,
		.nargs = 2,
		.argtypes = {TIDOID, INT4OID},
		.sql = "UPDATE %1$s.location_stock_slots AS s"
		"   SET stock = s.stock OPERATOR(pg_catalog.-) $2"
		" WHERE s.ctid OPERATOR(pg_catalog.=) $1"
	},

	/*
	 * ... or, on the full path, $2 taken from each slot locked at ctid $1,
	 * once the order is written ...
	 */
	[STMT_TAKE_FROM_LOCATION_SLOTS] = {
		.what = "updating the stock slots of locations",
		.since = SINCE_1_3,
		.ok = SPI_OK_UPDATE,
		.nargs = 2,
		.argtypes = {TIDARRAYOID, INT4ARRAYOID},
		.sql = "UPDATE %1$s.location_stock_slots AS s"
		"   SET stock = s.stock OPERATOR(pg_catalog.-)"
		"       ($2)[pg_catalog.array_position($1, s.ctid)]"
		" WHERE s.ctid OPERATOR(pg_catalog.=) ANY ($1)"
	},

	/*
	 * ... and, once the order $1 is written, $3 taken from each location row
	 * locked at ctid $2, and the allocations ($4 product, $5 location, $6
	 * units) recorded ...
	 */
	[STMT_WRITE_ALLOCATIONS] = {
		.what = "writing the allocations",
		.since = SINCE_1_2,
		.ok = SPI_OK_INSERT,
		.nargs = 6,
		.argtypes = {INT8OID, TIDARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID},
		.sql = TAKE_AND_WRITE_ALLOCATIONS_SQL
	},

	/*
	 * ... or the one allocation of a line one slot served, its units taken
	 * already (locations_take_slot): order $1, product $2, location $3, units
	 * $4 ...
	 */
	[STMT_WRITE_ONE_ALLOCATION] = {
		.what = "writing the allocations",
		.since = SINCE_1_2,
		.ok = SPI_OK_INSERT,
		.nargs = 4,
		.argtypes = {INT8OID, INT8OID, INT8OID, INT4OID},
		.sql = "INSERT INTO %1$s.order_item_allocations"
		"       (order_id, product_id, location_id, quantity)"
		"VALUES ($1, $2, $3, $4)"
	},

	/*
	 * ... or only recorded, when no location row gives any (the slots did: $2
	 * and $3 are not read)
	 */
	[STMT_WRITE_ALLOCATIONS_ONLY] = {
		.what = "writing the allocations",
		.since = SINCE_1_2,
		.ok = SPI_OK_INSERT,
		.nargs = 6,
		.argtypes = {INT8OID, TIDARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID},
		.sql = WRITE_ALLOCATIONS_SQL
	},

};

/* The default location's id: its stock is products.stock and the slots */
#define DEFAULT_LOCATION 1

/* Run stmt, whose one argument is the lines' product ids; return its rows */
static uint64
read_for_lines(LocationsStatementId stmt, const CartLine *lines, int nlines)
{
	Datum	   *ids = palloc(sizeof(Datum) * nlines);
	Datum		args[1];

	for (int i = 0; i < nlines; i++)
		ids[i] = Int64GetDatum(lines[i].product_id);
	args[0] = stmt_bigint_array(ids, nlines);
	return stmt_execute(&statements[stmt], args, NULL, 0);
}

/*
 * Read, on the snapshot (now: on a new one), the stock the lines'
 * products hold in locations other than the default and not retired
 * (product id, their stock, their best priority, the default's); return
 * the rows.  slots: whether a location's stock may be in slots (what the
 * backend knows, or, for a step about to refuse, looked at again).
 */
static uint64
read_located_stock(const CartLine *lines, int nlines, bool now, bool slots)
{
	LocationsStatementId stmt;

	if (slots)
		stmt = now ? STMT_LOCATED_STOCK_SLOTS_NOW : STMT_LOCATED_STOCK_SLOTS;
	else
		stmt = now ? STMT_LOCATED_STOCK_NOW : STMT_LOCATED_STOCK;
	return read_for_lines(stmt, lines, nlines);
}

/*
 * Size a located line's arrays for n locations and the default (the last
 * candidate), nothing taken
 */
static void
size_locations(CartLine *line, int n)
{
	line->loc.nlocations = n;
	line->loc.location_ids = palloc(sizeof(int64) * (n + 1));
	line->loc.location_stock = palloc0(sizeof(int32) * (n + 1));
	line->loc.location_row_stock = palloc0(sizeof(int32) * (n + 1));
	line->loc.location_priority = palloc(sizeof(int32) * (n + 1));
	line->loc.location_ctids = palloc(sizeof(ItemPointerData) * (n + 1));
	line->loc.location_take = palloc0(sizeof(int32) * (n + 1));
	line->loc.default_take = 0;
	line->loc.nslot_rows = 0;
	line->loc.location_ids[n] = DEFAULT_LOCATION;
	ItemPointerSetInvalid(&line->loc.location_ctids[n]);
}

/*
 * The located hot products this backend found (1.3): a product whose
 * location strictly preferred to the default and to every other has its
 * stock there in slots, and how many.  A one-line cart of such a product
 * tries one of its slots without reading its locations first.  Forgotten
 * whenever a split, a merge, a product's first row in a location or a
 * change of a location is committed (triggers: checkout_features_generation);
 * an entry read a moment before that invalidation arrives sends a buyer to
 * the location that was preferred a moment ago, and a slot that is gone
 * serves nobody (the line then takes the full path).  Only products found
 * hot are kept: a few per shop.
 */
typedef struct HotLocated
{
	int64		product_id;		/* the key */
	int64		location_id;
	int32		nslots;
} HotLocated;

static HTAB *hot_located = NULL;
static uint64 hot_generation = 0;

/* The located hot products known, emptied when anything they stand on changed */
static HTAB *
hot_products(void)
{
	uint64		now = checkout_features_generation();

	if (hot_located != NULL && hot_generation == now)
		return hot_located;
	if (hot_located == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(HotLocated);
		ctl.hcxt = TopMemoryContext;
		hot_located = hash_create("checkout located hot products", 16, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	else
	{
		HASH_SEQ_STATUS status;
		HotLocated *entry;

		hash_seq_init(&status, hot_located);
		while ((entry = hash_seq_search(&status)) != NULL)
			(void) hash_search(hot_located, &entry->product_id, HASH_REMOVE, NULL);
	}
	hot_generation = now;
	return hot_located;
}

/*
 * Make line the fast path's candidate: location_id's nslots slots, chosen
 * at generation (checkout_features_generation())
 */
static void
hot_candidate(CartLine *line, int64 location_id, int32 nslots, int32 priority,
			  int32 default_priority, uint64 generation)
{
	size_locations(line, 1);
	line->loc.slot_generation = generation;
	line->loc.located = true;
	line->loc.slot_location_id = location_id;
	line->loc.slot_count = nslots;
	line->loc.location_ids[0] = location_id;
	line->loc.location_priority[0] = priority;
	ItemPointerSetInvalid(&line->loc.location_ctids[0]);
	line->loc.location_priority[1] = default_priority;
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
 *
 * The located hot product's fast path (1.3), the other way round: when the
 * cart has one line and its product's location strictly preferred to the
 * default and to every other has slots, the line is to be served by one
 * of them (locations_take_slot); a product served so before is known
 * without reading its locations (hot_located).
 */
bool
locations_find_lines(CartLine *lines, int nlines)
{
	uint64		nrows;
	int			nlocated = 0;
	CartLine   *only = NULL;
	bool		default_preferred = false;
	bool		slots;
	uint64		generation;

	if (!checkout_shop_uses(CHECKOUT_LOCATIONS))
		return false;
	slots = checkout_shop_uses(CHECKOUT_LOCATION_SLOTS);
	generation = checkout_features_generation();

	/* a located hot product this backend knows: straight to its slots */
	if (slots && nlines == 1 && lines[0].bundle.keep == 0 && checkout_may_cache())
	{
		HotLocated *hot = hash_search(hot_products(), &lines[0].product_id,
									  HASH_FIND, NULL);

		if (hot != NULL)
		{
			/* priorities unknown: a slot serves it, or its locations are read */
			hot_candidate(&lines[0], hot->location_id, hot->nslots, 0, 0, generation);
			return true;
		}
	}

	if (!slots)
		nrows = read_located_stock(lines, nlines, false, false);
	else
		nrows = read_for_lines(STMT_LOCATED_LOCATIONS, lines, nlines);
	for (uint64 r = 0; r < nrows; r++)
	{
		int64		product_id = DatumGetInt64(stmt_value(r, 1));
		int32		best;
		int32		default_priority;
		bool		strictly;

		/* a product's rows: its best location first (STMT_LOCATED_LOCATIONS) */
		if (slots && r > 0 && DatumGetInt64(stmt_value(r - 1, 1)) == product_id)
			continue;
		best = DatumGetInt32(stmt_value(r, slots ? 2 : 3));
		default_priority = DatumGetInt32(stmt_value(r, slots ? 3 : 4));
		strictly = slots &&
			(r + 1 == nrows ||
			 DatumGetInt64(stmt_value(r + 1, 1)) != product_id ||
			 DatumGetInt32(stmt_value(r + 1, 2)) > best);
		for (int i = 0; i < nlines; i++)
			if (lines[i].product_id == product_id)
			{
				lines[i].loc.located = true;
				only = &lines[i];
				nlocated++;
				default_preferred = default_priority < best;

				/*
				 * The fast path's candidate: a location strictly preferred to
				 * the default and to every other, with slots
				 */
				if (strictly && nlines == 1 && lines[i].bundle.keep == 0 &&
					best < default_priority && DatumGetInt32(stmt_value(r, 5)) > 0)
					hot_candidate(&lines[i], DatumGetInt64(stmt_value(r, 4)),
								  DatumGetInt32(stmt_value(r, 5)), best, default_priority,
								  generation);
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
 * The located hot product's fast path (1.3): a one-line cart whose
 * product's location P is strictly preferred to the default and to every
 * other location (locations_find_lines), where P's stock is split into
 * slots.  P can serve the line exactly when the rules choose P, so the
 * line takes one slot of P that holds its whole quantity, as slots.c
 * serves a default's slot: a free one without waiting (SKIP LOCKED, from a
 * random slot on); when every such slot is busy, queue for the product and
 * look again, then wait for one.  The product's row and P's row are not
 * locked: the buyers of P share its slots.  Returns whether a slot served
 * the line (its units are taken from it already); when none does, the
 * caller locks the product's row and all its locations
 * (locations_lock_line), as for any located line, still holding the
 * product's queue lock.
 */
bool
locations_take_slot(CheckoutCall *call, CartLine *line)
{
	SlotSearch	search = {
		.find_free = &statements[STMT_FREE_LOCATION_SLOT],
		.wait_for = &statements[STMT_WAIT_FOR_LOCATION_SLOT],
		.take = &statements[STMT_TAKE_FROM_LOCATION_SLOT],
		.location_id = line->loc.slot_location_id,
		.nslots = line->loc.slot_count
	};
	bool		served;

	if (line->loc.slot_served)
		return true;
	if (line->loc.slot_count == 0)
		return false;
	served = stock_take_one_slot(call, line, &search);

	/*
	 * Remember it, unless what it was chosen from may be older than what the
	 * backend knows now: an invalidation taken in since (the table was
	 * emptied for it), or a snapshot older than the statement's
	 */
	if (served && checkout_may_cache() && !IsolationUsesXactSnapshot() &&
		line->loc.slot_generation == checkout_features_generation())
	{
		HotLocated *hot = hash_search(hot_products(), &line->product_id, HASH_ENTER, NULL);

		hot->location_id = line->loc.slot_location_id;
		hot->nslots = line->loc.slot_count;
	}
	if (!served)
		return false;

	/* P holds what the slot held; the default, not looked at, nothing */
	line->loc.slot_served = true;
	line->loc.location_stock[0] = (int32) line->stock;
	line->loc.location_stock[1] = 0;
	line->held.row_stock = 0;
	line->held.default_stock = 0;
	line->held.nslot_rows = 0;
	line->row_take = 0;
	ItemPointerSetInvalid(&line->ctid);
	return true;
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
	nrows = read_located_stock(lines, nlines, true,
							   checkout_shop_uses_now(CHECKOUT_LOCATION_SLOTS));
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
	nrows = read_located_stock(lines, nlines, false,
							   checkout_shop_uses_now(CHECKOUT_LOCATION_SLOTS));
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
 * Lock the slots of a located line's locations (after their rows, in
 * location and slot order) and count them in their locations' stock; a
 * slot of a location the line does not have (retired) is locked, not
 * counted
 */
static void
lock_location_slots(CheckoutCall *call, CartLine *line)
{
	Datum		args[1] = {Int64GetDatum(line->product_id)};
	uint64		nslots;
	int			k = 0;

	checkout_lock_step(call, "locking the locations' stock slots of product",
					   line->product_id);
	nslots = stmt_execute(&statements[STMT_LOCK_LOCATION_SLOTS], args, NULL, 0);
	checkout_lock_step(call, NULL, 0);
	line->loc.nslot_rows = 0;
	line->loc.slot_location = palloc(sizeof(int32) * Max(nslots, 1));
	line->loc.slot_ctids = palloc(sizeof(ItemPointerData) * Max(nslots, 1));
	line->loc.slot_stock = palloc(sizeof(int32) * Max(nslots, 1));
	for (uint64 r = 0; r < nslots; r++)
	{
		int64		location_id = DatumGetInt64(stmt_value(r, 1));
		int32		stock = DatumGetInt32(stmt_value(r, 3));
		int			n = line->loc.nslot_rows;

		/* both in location order */
		while (k < line->loc.nlocations && line->loc.location_ids[k] < location_id)
			k++;
		if (k == line->loc.nlocations || line->loc.location_ids[k] != location_id)
			continue;
		line->loc.slot_location[n] = k;
		line->loc.slot_ctids[n] = *(ItemPointer) DatumGetPointer(stmt_value(r, 2));
		line->loc.slot_stock[n] = stock;
		line->loc.nslot_rows++;
		line->loc.location_stock[k] = (int32) Min((int64) line->loc.location_stock[k] + stock,
												  PG_INT32_MAX);
		line->stock += stock;
	}
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
	size_locations(line, (int) nrows);
	line->stock = line->held.default_stock;
	for (uint64 r = 0; r < nrows; r++)
	{
		line->loc.location_ids[r] = DatumGetInt64(stmt_value(r, 1));
		line->loc.location_stock[r] = DatumGetInt32(stmt_value(r, 2));
		line->loc.location_row_stock[r] = line->loc.location_stock[r];
		line->loc.location_ctids[r] = *(ItemPointer) DatumGetPointer(stmt_value(r, 3));
		line->loc.location_priority[r] = DatumGetInt32(stmt_value(r, 4));
		default_priority = DatumGetInt32(stmt_value(r, 5));
		line->stock += line->loc.location_stock[r];
	}

	/* The default location is the last candidate of the arrays */
	line->loc.location_stock[nrows] = (int32) Min(line->held.default_stock, PG_INT32_MAX);
	line->loc.location_priority[nrows] = default_priority;

	/*
	 * Then the locations' slots (1.3).  A backend that still trusts "never
	 * split" looks again before it counts a line short without them: a
	 * location split a moment ago moved its stock into them.
	 */
	if (nrows > 0 &&
		(checkout_shop_uses(CHECKOUT_LOCATION_SLOTS) ||
		 (line->stock < line->quantity &&
		  checkout_shop_uses_now(CHECKOUT_LOCATION_SLOTS))))
		lock_location_slots(call, line);
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
 * Take the located lines' units from their location rows, then their
 * locations' slots (the row first, as stock_serve_from_row_and_slots does
 * for the default), and record where every unit of those lines came from
 * (the default's part included), for order order_id.  A line one slot
 * served (locations_take_slot) took its units already.
 */
void
locations_write_allocations(int64 order_id, const CartLine *lines, int nlines)
{
	int			size = 0;
	int			nslot_size = 0;
	int			ntakes = 0;
	int			nslot_takes = 0;
	int			nallocations = 0;
	Datum	   *ctids;
	Datum	   *amounts;
	Datum	   *slot_ctids;
	Datum	   *slot_amounts;
	Datum	   *product_ids;
	Datum	   *location_ids;
	Datum	   *quantities;
	Datum		args[6];

	/* the fast path's one line, from one slot of one location */
	if (nlines == 1 && lines[0].loc.slot_served)
	{
		args[0] = Int64GetDatum(order_id);
		args[1] = Int64GetDatum(lines[0].product_id);
		args[2] = Int64GetDatum(lines[0].loc.slot_location_id);
		args[3] = Int32GetDatum(lines[0].quantity);
		if (stmt_execute(&statements[STMT_WRITE_ONE_ALLOCATION], args, NULL, 0) != 1)
			elog(ERROR, "checkout: writing the allocation of order %lld wrote none",
				 (long long) order_id);
		return;
	}

	for (int i = 0; i < nlines; i++)
		if (lines[i].loc.located)
		{
			size += lines[i].loc.nlocations + 1;
			nslot_size += lines[i].loc.nslot_rows;
		}
	if (size == 0)
		return;
	ctids = palloc(sizeof(Datum) * size);
	amounts = palloc(sizeof(Datum) * size);
	slot_ctids = palloc(sizeof(Datum) * Max(nslot_size, 1));
	slot_amounts = palloc(sizeof(Datum) * Max(nslot_size, 1));
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
			int32		left;

			if (take == 0)
				continue;
			product_ids[nallocations] = Int64GetDatum(line->product_id);
			location_ids[nallocations] = Int64GetDatum(line->loc.location_ids[k]);
			quantities[nallocations++] = Int32GetDatum(take);
			if (line->loc.location_ids[k] == DEFAULT_LOCATION || line->loc.slot_served)
				continue;

			/* from the row first, then slot after slot */
			left = take;
			if (line->loc.location_row_stock[k] > 0)
			{
				int32		from_row = Min(line->loc.location_row_stock[k], left);

				ctids[ntakes] = PointerGetDatum(&line->loc.location_ctids[k]);
				amounts[ntakes++] = Int32GetDatum(from_row);
				left -= from_row;
			}
			for (int n = 0; left > 0 && n < line->loc.nslot_rows; n++)
			{
				int32		from_slot;

				if (line->loc.slot_location[n] != k || line->loc.slot_stock[n] == 0)
					continue;
				from_slot = Min(line->loc.slot_stock[n], left);
				slot_ctids[nslot_takes] = PointerGetDatum(&line->loc.slot_ctids[n]);
				slot_amounts[nslot_takes++] = Int32GetDatum(from_slot);
				left -= from_slot;
			}
			if (left > 0)
				elog(ERROR, "checkout: location %lld is short of product %lld",
					 (long long) line->loc.location_ids[k], (long long) line->product_id);
		}
	}
	if (nslot_takes > 0)
	{
		Datum		slot_args[2];

		slot_args[0] = stmt_tid_array(slot_ctids, nslot_takes);
		slot_args[1] = stmt_int_array(slot_amounts, nslot_takes);
		if (stmt_execute(&statements[STMT_TAKE_FROM_LOCATION_SLOTS], slot_args, NULL, 0) !=
			(uint64) nslot_takes)
			elog(ERROR, "checkout: taking from the locations' slots of order %lld updated too few",
				 (long long) order_id);
	}
	args[0] = Int64GetDatum(order_id);
	args[1] = stmt_tid_array(ctids, ntakes);
	args[2] = stmt_int_array(amounts, ntakes);
	args[3] = stmt_bigint_array(product_ids, nallocations);
	args[4] = stmt_bigint_array(location_ids, nallocations);
	args[5] = stmt_int_array(quantities, nallocations);
	if (stmt_execute(&statements[ntakes > 0 ? STMT_WRITE_ALLOCATIONS : STMT_WRITE_ALLOCATIONS_ONLY],
					 args, NULL, 0) != (uint64) nallocations)
		elog(ERROR, "checkout: writing the allocations of order %lld wrote too few",
			 (long long) order_id);
}
