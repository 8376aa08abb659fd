/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Live checkout statistics in shared memory: shop_checkout_stats(),
 *		shop_checkout_stats_reset(), and the trigger that counts cancelled
 *		and expired orders.
 *
 * Only when the library is loaded through shared_preload_libraries does it
 * request shared memory (shmem_request_hook) and create it
 * (shmem_startup_hook); without that, the two SQL functions raise 55000 and
 * shop_checkout() counts nothing.
 *
 * Shared memory holds one entry per database, CHECKOUT_STATS_DATABASES of
 * them.  An entry is claimed once, with a compare-and-swap of its dboid from
 * InvalidOid to the database's OID, and then every field is a
 * pg_atomic_uint64 that checkouts add to without any lock: counting never
 * serialises checkouts.  A backend finds its database's entry once and keeps
 * a pointer to it.  A reset zeroes the counters (increments racing with it
 * may survive or not: it is not atomic as a whole) and frees the entries of
 * databases that no longer exist; AddinShmemInitLock guards only creation.
 *
 * shop_checkout_stats() fills as many columns as the SQL function declares
 * (as pg_stat_statements does): the library of a newer version still
 * answers an install not yet updated (1.0 had the first 19 columns, 1.1
 * the first 23).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "checkout.h"

/* How many databases the statistics can tell apart */
#define CHECKOUT_STATS_DATABASES 64

/* The counters of one database, in the order of the SQL function's columns */
typedef enum CheckoutCounter
{
	STAT_ATTEMPTS,
	STAT_SUCCESSES,
	STAT_INSUFFICIENT_STOCK,
	STAT_EMPTY_CART,
	STAT_UNKNOWN_CUSTOMER,
	STAT_LOCK_TIMEOUTS,
	STAT_SERIALIZATION_FAILURES,
	STAT_OTHER_FAILURES,
	STAT_ITEMS_SOLD,
	STAT_TOTAL_TIME_US,
	STAT_MAX_TIME_US,
	STAT_LOCK_WAIT_US,
	STAT_REPLAYS,
	STAT_PURCHASE_LIMIT,
	STAT_ORDERS_CANCELLED,
	STAT_ORDERS_EXPIRED,
	STAT_VOUCHER_INVALID,
	STAT_VOUCHER_LIMIT,
	STAT_VOUCHER_CUSTOMER_LIMIT,
	STAT_COUNTERS
} CheckoutCounter;

/* Columns of shop_checkout_stats(): 1.0 had 19, 1.1 four more, 1.2 three more */
#define STATS_COLUMNS_1_0 19
#define STATS_COLUMNS_1_1 23
#define STATS_COLUMNS 26

typedef struct CheckoutDbStats
{
	pg_atomic_uint32 dboid;		/* InvalidOid while the entry is free */
	pg_atomic_uint64 counters[STAT_COUNTERS];
	pg_atomic_uint64 stats_reset;	/* TimestampTz of the last reset */
} CheckoutDbStats;

typedef struct CheckoutStatsShared
{
	CheckoutDbStats db[CHECKOUT_STATS_DATABASES];
} CheckoutStatsShared;

static CheckoutStatsShared *stats_shared = NULL;
static CheckoutDbStats *my_db_stats = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Ask for the shared memory the statistics need */
static void
checkout_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(CheckoutStatsShared)));
}

/* Create the statistics in shared memory, or attach to them */
static void
checkout_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats_shared = ShmemInitStruct("checkout statistics",
								   sizeof(CheckoutStatsShared), &found);
	if (!found)
	{
		TimestampTz now = GetCurrentTimestamp();

		for (int i = 0; i < CHECKOUT_STATS_DATABASES; i++)
		{
			CheckoutDbStats *e = &stats_shared->db[i];

			pg_atomic_init_u32(&e->dboid, InvalidOid);
			for (int c = 0; c < STAT_COUNTERS; c++)
				pg_atomic_init_u64(&e->counters[c], 0);
			pg_atomic_init_u64(&e->stats_reset, (uint64) now);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Install the shared memory hooks; called from _PG_init */
void
checkout_stats_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = checkout_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = checkout_shmem_startup;
}

/* Raise 55000 unless the statistics exist */
static void
ensure_stats_enabled(void)
{
	if (stats_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("checkout must be loaded via shared_preload_libraries to keep statistics"),
				 errhint("Add checkout to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * Find this database's entry, claiming a free one only when it has none;
 * NULL when every entry belongs to another database.  Looking first matters
 * after a reset freed an earlier entry: claiming the first free one would
 * give the database a second row.
 */
static CheckoutDbStats *
db_stats(void)
{
	if (my_db_stats != NULL &&
		pg_atomic_read_u32(&my_db_stats->dboid) == MyDatabaseId)
		return my_db_stats;

	/* Look for the database's own entry */
	my_db_stats = NULL;
	for (int i = 0; i < CHECKOUT_STATS_DATABASES; i++)
		if (pg_atomic_read_u32(&stats_shared->db[i].dboid) == MyDatabaseId)
			return my_db_stats = &stats_shared->db[i];

	/*
	 * Claim the first free one; when another backend of this database claimed
	 * it first, that one is ours too
	 */
	for (int i = 0; i < CHECKOUT_STATS_DATABASES; i++)
	{
		CheckoutDbStats *e = &stats_shared->db[i];
		uint32		owner = InvalidOid;

		if (pg_atomic_compare_exchange_u32(&e->dboid, &owner, MyDatabaseId) ||
			owner == MyDatabaseId)
			return my_db_stats = e;
	}
	return NULL;
}

/* Raise the counter to value if value is larger */
static void
atomic_max_u64(pg_atomic_uint64 *counter, uint64 value)
{
	uint64		seen = pg_atomic_read_u64(counter);

	while (value > seen &&
		   !pg_atomic_compare_exchange_u64(counter, &seen, value))
		;
}

/* Count one call of shop_checkout(); a no-op without the preload */
void
checkout_stats_count(CheckoutOutcome outcome, int64 items_sold,
					 int64 elapsed_us, int64 lock_wait_us)
{
	static const CheckoutCounter outcome_counter[] = {
		[CHECKOUT_SUCCESS] = STAT_SUCCESSES,
		[CHECKOUT_REPLAY] = STAT_REPLAYS,
		[CHECKOUT_PURCHASE_LIMIT] = STAT_PURCHASE_LIMIT,
		[CHECKOUT_INSUFFICIENT_STOCK] = STAT_INSUFFICIENT_STOCK,
		[CHECKOUT_EMPTY_CART] = STAT_EMPTY_CART,
		[CHECKOUT_UNKNOWN_CUSTOMER] = STAT_UNKNOWN_CUSTOMER,
		[CHECKOUT_LOCK_TIMEOUT] = STAT_LOCK_TIMEOUTS,
		[CHECKOUT_SERIALIZATION_FAILURE] = STAT_SERIALIZATION_FAILURES,
		[CHECKOUT_OTHER_FAILURE] = STAT_OTHER_FAILURES,
		[CHECKOUT_VOUCHER_INVALID] = STAT_VOUCHER_INVALID,
		[CHECKOUT_VOUCHER_LIMIT] = STAT_VOUCHER_LIMIT,
		[CHECKOUT_VOUCHER_CUSTOMER_LIMIT] = STAT_VOUCHER_CUSTOMER_LIMIT,
	};
	CheckoutDbStats *e;

	if (stats_shared == NULL || (e = db_stats()) == NULL)
		return;

	pg_atomic_fetch_add_u64(&e->counters[STAT_ATTEMPTS], 1);
	pg_atomic_fetch_add_u64(&e->counters[outcome_counter[outcome]], 1);
	/* A replay returned an order id: a success too */
	if (outcome == CHECKOUT_REPLAY)
		pg_atomic_fetch_add_u64(&e->counters[STAT_SUCCESSES], 1);
	if (items_sold > 0)
		pg_atomic_fetch_add_u64(&e->counters[STAT_ITEMS_SOLD], items_sold);
	pg_atomic_fetch_add_u64(&e->counters[STAT_TOTAL_TIME_US], Max(elapsed_us, 0));
	atomic_max_u64(&e->counters[STAT_MAX_TIME_US], Max(elapsed_us, 0));
	pg_atomic_fetch_add_u64(&e->counters[STAT_LOCK_WAIT_US], Max(lock_wait_us, 0));
}

PG_FUNCTION_INFO_V1(shop_checkout_stats);

/*
 * shop_checkout_stats() RETURNS SETOF record: one row per database that has
 * counted a checkout since the server started.
 */
Datum
shop_checkout_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			ncolumns;

	ensure_stats_enabled();
	InitMaterializedSRF(fcinfo, 0);
	ncolumns = rsinfo->setDesc->natts;
	if (ncolumns != STATS_COLUMNS_1_0 && ncolumns != STATS_COLUMNS_1_1 &&
		ncolumns != STATS_COLUMNS)
		elog(ERROR, "checkout: shop_checkout_stats() declares %d columns", ncolumns);

	for (int i = 0; i < CHECKOUT_STATS_DATABASES; i++)
	{
		CheckoutDbStats *e = &stats_shared->db[i];
		Oid			dboid = pg_atomic_read_u32(&e->dboid);
		uint64		c[STAT_COUNTERS];
		Datum		values[STATS_COLUMNS];
		bool		nulls[STATS_COLUMNS] = {0};
		char	   *datname;
		int			col = 0;

		if (dboid == InvalidOid)
			continue;
		for (int k = 0; k < STAT_COUNTERS; k++)
			c[k] = pg_atomic_read_u64(&e->counters[k]);
		datname = get_database_name(dboid);

		values[col++] = ObjectIdGetDatum(dboid);
		values[col] = datname ? CStringGetTextDatum(datname) : (Datum) 0;
		nulls[col++] = (datname == NULL);
		values[col++] = Int64GetDatum((int64) c[STAT_ATTEMPTS]);
		values[col++] = Int64GetDatum((int64) c[STAT_SUCCESSES]);
		values[col++] = Int64GetDatum((int64) (c[STAT_ATTEMPTS] - c[STAT_SUCCESSES]));
		values[col++] = Int64GetDatum((int64) c[STAT_INSUFFICIENT_STOCK]);
		values[col++] = Int64GetDatum((int64) c[STAT_EMPTY_CART]);
		values[col++] = Int64GetDatum((int64) c[STAT_UNKNOWN_CUSTOMER]);
		values[col++] = Int64GetDatum((int64) c[STAT_LOCK_TIMEOUTS]);
		values[col++] = Int64GetDatum((int64) c[STAT_SERIALIZATION_FAILURES]);
		values[col++] = Int64GetDatum((int64) c[STAT_OTHER_FAILURES]);
		values[col++] = Int64GetDatum((int64) c[STAT_ITEMS_SOLD]);
		values[col++] = Float8GetDatum(c[STAT_TOTAL_TIME_US] / 1000.0);
		values[col] = Float8GetDatum(c[STAT_ATTEMPTS] ?
									 c[STAT_TOTAL_TIME_US] / 1000.0 / c[STAT_ATTEMPTS] : 0);
		nulls[col++] = (c[STAT_ATTEMPTS] == 0);
		values[col++] = Float8GetDatum(c[STAT_MAX_TIME_US] / 1000.0);
		values[col++] = Float8GetDatum(c[STAT_LOCK_WAIT_US] / 1000.0);
		values[col] = Float8GetDatum(c[STAT_ATTEMPTS] ?
									 c[STAT_LOCK_WAIT_US] / 1000.0 / c[STAT_ATTEMPTS] : 0);
		nulls[col++] = (c[STAT_ATTEMPTS] == 0);
		values[col] = Float8GetDatum(c[STAT_ATTEMPTS] ?
									 (double) c[STAT_SUCCESSES] / c[STAT_ATTEMPTS] : 0);
		nulls[col++] = (c[STAT_ATTEMPTS] == 0);
		values[col++] = TimestampTzGetDatum((TimestampTz) pg_atomic_read_u64(&e->stats_reset));
		values[col++] = Int64GetDatum((int64) c[STAT_REPLAYS]);
		values[col++] = Int64GetDatum((int64) c[STAT_PURCHASE_LIMIT]);
		values[col++] = Int64GetDatum((int64) c[STAT_ORDERS_CANCELLED]);
		values[col++] = Int64GetDatum((int64) c[STAT_ORDERS_EXPIRED]);
		values[col++] = Int64GetDatum((int64) c[STAT_VOUCHER_INVALID]);
		values[col++] = Int64GetDatum((int64) c[STAT_VOUCHER_LIMIT]);
		values[col++] = Int64GetDatum((int64) c[STAT_VOUCHER_CUSTOMER_LIMIT]);
		Assert(col == lengthof(values));

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(shop_checkout_stats_reset);

/*
 * shop_checkout_stats_reset() RETURNS timestamptz: zero every database's
 * counters, free the entries of dropped databases, return the reset time.
 */
Datum
shop_checkout_stats_reset(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTimestamp();

	ensure_stats_enabled();
	for (int i = 0; i < CHECKOUT_STATS_DATABASES; i++)
	{
		CheckoutDbStats *e = &stats_shared->db[i];
		Oid			dboid = pg_atomic_read_u32(&e->dboid);

		if (dboid == InvalidOid)
			continue;
		for (int c = 0; c < STAT_COUNTERS; c++)
			pg_atomic_write_u64(&e->counters[c], 0);
		pg_atomic_write_u64(&e->stats_reset, (uint64) now);
		if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboid)))
			pg_atomic_write_u32(&e->dboid, InvalidOid);
	}
	PG_RETURN_TIMESTAMPTZ(now);
}

/* The number of a column of orders, which must exist */
static int
column_number(TupleDesc tupdesc, const char *name)
{
	int			attnum = SPI_fnumber(tupdesc, name);

	if (attnum <= 0)
		elog(ERROR, "checkout: orders has no column \"%s\"", name);
	return attnum;
}

PG_FUNCTION_INFO_V1(shop_count_cancelled_order);

/*
 * shop_count_cancelled_order() RETURNS trigger: an AFTER UPDATE row trigger
 * on orders, fired when an order becomes cancelled; counts it, and as
 * expired too when it was cancelled once its payment window had ended.
 */
Datum
shop_count_cancelled_order(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	tupdesc;
	bool		expires_null,
				cancelled_null;
	Datum		expires_at,
				cancelled_at;
	CheckoutDbStats *e;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "checkout: shop_count_cancelled_order() must be an update row trigger");

	tuple = trigdata->tg_newtuple;
	if (stats_shared == NULL || (e = db_stats()) == NULL)
		return PointerGetDatum(tuple);

	tupdesc = trigdata->tg_relation->rd_att;
	expires_at = heap_getattr(tuple, column_number(tupdesc, "expires_at"), tupdesc,
							  &expires_null);
	cancelled_at = heap_getattr(tuple, column_number(tupdesc, "cancelled_at"), tupdesc,
								&cancelled_null);
	pg_atomic_fetch_add_u64(&e->counters[STAT_ORDERS_CANCELLED], 1);
	if (!expires_null && !cancelled_null &&
		DatumGetTimestampTz(cancelled_at) >= DatumGetTimestampTz(expires_at))
		pg_atomic_fetch_add_u64(&e->counters[STAT_ORDERS_EXPIRED], 1);
	return PointerGetDatum(tuple);
}
