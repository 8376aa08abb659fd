/*-------------------------------------------------------------------------
 *
 * events.c
 *		Order events: every change of an order, written in the order's own
 *		transaction to the sink checkout.events names (since 1.3).
 *
 * An event is one JSON object: a schema version, an event id (from the
 * sequence order_event_ids of the extension's schema), its kind, the order's
 * id, the time of the change (the transaction's now(), as the order's own
 * timestamps), and the kind's fields (docs/reference.md lists them all).
 * Kinds: placed (shop_checkout, built here from the call's lines),
 * paid, cancelled, expired and preorder_filled (the SQL functions that make
 * those changes, through shop_order_event()).  This file is the one place
 * that writes an event; nothing else knows the sinks.
 *
 * Sinks (checkout.events):
 *	- off, the default: nothing, and no statement, lock or lookup on any
 *	  path (the setting is a variable of this backend);
 *	- pgq: pgq.insert_event_raw() into the queue checkout.events_queue names
 *	  (the C function pgq.insert_event() wraps, called directly), with the
 *	  kind as ev_type,
 *	  the JSON as ev_data, the event id as ev_extra1 and the order id as
 *	  ev_extra2.  PgQ cuts batches by snapshots, so a consumer never skips
 *	  an event of a transaction that commits after a later one;
 *	- logical: a transactional logical decoding message with the prefix
 *	  CHECKOUT_EVENTS_PREFIX (one WAL record, no row), decoded in commit
 *	  order through a replication slot.
 * Either way the event commits or rolls back with the change: a failed or
 * rolled-back change emits nothing, and a keyed replay of a checkout
 * changes nothing and so emits nothing.  Nothing here sends a NOTIFY (its
 * commit-time lock is database-wide): consumers wake on PgQ's ticks or on
 * the slot.
 *
 * Ordering.  An event's id is taken after the change it tells of, under the
 * order's row lock (or, for placed, before the order is visible to anyone):
 * the events of one order have increasing ids in the order of its changes.
 *
 * Who writes.  The checkout runs as its caller, a role that may hold no
 * right on PgQ's tables: the event is written as the owner of the event id
 * sequence (the extension's owner), as SECURITY DEFINER would, for that
 * statement only.  checkout.events is a superuser setting (PGC_SUSET), so
 * that an application role cannot turn the events of its own orders off.
 *
 * Settings refused.  SET checkout.events = pgq is refused (55000) where the
 * pgq extension is not installed, and = logical where wal_level is below
 * logical; ALTER DATABASE ... SET says so in a notice.  A value from the
 * configuration file or a database's settings is not refused (it is read
 * where no database may be open): then an event that cannot be written
 * fails its change with a clear error, so that no order is placed whose
 * event is lost.
 *
 * Memory rules.  pgq.insert_event_raw()'s FmgrInfo is kept per backend in
 * TopMemoryContext (looked up again when its OID changes); everything else
 * lives in the caller's memory context (the checkout's SPI procedure
 * context); pgq's function connects to SPI itself.
 *
 * Locking rules.  nextval() on the sequence (no lock held past the call);
 * the pgq sink's insert into the queue's current event table
 * (RowExclusiveLock, as any insert).  No lock is taken when the sink is off.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "commands/sequence.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "events.h"


PG_FUNCTION_INFO_V1(shop_order_event);

/* The version of an event's fields (schema_version): raised when one changes meaning */
#define CHECKOUT_EVENTS_SCHEMA_VERSION 1

/* checkout.events: where order events go */
typedef enum EventSink
{
	EVENTS_OFF,
	EVENTS_PGQ,
	EVENTS_LOGICAL
} EventSink;

static const struct config_enum_entry event_sink_options[] = {
	{"off", EVENTS_OFF, false},
	{"pgq", EVENTS_PGQ, false},
	{"logical", EVENTS_LOGICAL, false},
	{NULL, 0, false}
};

static int	checkout_events = EVENTS_OFF;

/* checkout.events_queue: the PgQ queue of the pgq sink */
static char *checkout_events_queue = NULL;

/* The kinds of event, as shop_order_event() accepts them */
static const char *const event_kinds[] = {
	"placed", "paid", "cancelled", "expired", "preorder_filled", NULL
};

/* What an error while writing an event adds to its context */
typedef struct EventWrite
{
	const char *kind;
	int64		order_id;
	EventSink	sink;
} EventWrite;

/* Whether extension pgq is installed in this database (in a transaction only) */
static bool
pgq_installed(void)
{
	return OidIsValid(get_extension_oid("pgq", true));
}

/*
 * Refuse a sink that cannot work here (see the header comment): as an
 * error for SET, as a notice for ALTER ... SET, not at all for a value from
 * the configuration file or a database's or role's settings
 */
static bool
check_events(int *newval, void **extra, GucSource source)
{
	bool		refuse = source >= PGC_S_INTERACTIVE;

	if (*newval == EVENTS_LOGICAL && wal_level < WAL_LEVEL_LOGICAL &&
		(refuse || source == PGC_S_TEST))
	{
		GUC_check_errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
		GUC_check_errmsg("order events to logical decoding need wal_level = logical");
		GUC_check_errdetail("wal_level is \"%s\".",
							GetConfigOption("wal_level", false, false));
		GUC_check_errhint("Set wal_level = logical in postgresql.conf and restart the server, or use checkout.events = pgq.");
		return false;
	}
	if (*newval == EVENTS_PGQ && (refuse || source == PGC_S_TEST) &&
		IsTransactionState() && OidIsValid(MyDatabaseId) && !pgq_installed())
	{
		if (source == PGC_S_TEST)
		{
			ereport(NOTICE,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension \"pgq\" is not installed in this database"),
					 errdetail("A checkout where checkout.events is pgq fails until it is installed and the queue is created.")));
			return true;
		}
		GUC_check_errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
		GUC_check_errmsg("order events to PgQ need extension \"pgq\" in this database");
		GUC_check_errdetail("Extension \"pgq\" is not installed in database \"%s\".",
							get_database_name(MyDatabaseId));
		GUC_check_errhint("Install it (CREATE EXTENSION pgq), create the queue (SELECT shop_events_create_queue()), then set checkout.events again.");
		return false;
	}
	return true;
}

/* The settings (from _PG_init) */
void
events_init(void)
{
	DefineCustomEnumVariable("checkout.events",
							 "Where every change of an order is written as an event: off, pgq or logical.",
							 "pgq: into the PgQ queue checkout.events_queue; logical: a transactional "
							 "logical decoding message with the prefix \"" CHECKOUT_EVENTS_PREFIX "\".",
							 &checkout_events,
							 EVENTS_OFF,
							 event_sink_options,
							 PGC_SUSET,
							 0,
							 check_events, NULL, NULL);
	DefineCustomStringVariable("checkout.events_queue",
							   "The PgQ queue order events go to when checkout.events is pgq.",
							   "shop_events_create_queue() creates it.",
							   &checkout_events_queue,
							   "checkout_orders",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
}

/* Whether order events are on (a variable: costs nothing when off) */
bool
events_on(void)
{
	return checkout_events != EVENTS_OFF;
}

/* Error context: which event was being written, and where to */
static void
event_write_context(void *arg)
{
	EventWrite *write = (EventWrite *) arg;

	if (write->sink == EVENTS_PGQ)
		errcontext("writing order event \"%s\" of order %lld to PgQ queue \"%s\"",
				   write->kind, (long long) write->order_id, checkout_events_queue);
	else
		errcontext("writing order event \"%s\" of order %lld as a logical decoding message",
				   write->kind, (long long) write->order_id);
}

/*
 * Insert the event into the PgQ queue, as its writer: pgq.insert_event_raw()
 * called directly (it is C, and pgq.insert_event() is it wrapped in
 * PL/pgSQL: a statement to call it would cost a third of the event), with
 * the writer's EXECUTE right checked as a call through SQL would check it
 */
static void
write_to_pgq(const char *kind, int64 event_id, int64 order_id, const char *json)
{
	static const Oid argtypes[11] = {TEXTOID, INT8OID, TIMESTAMPTZOID, INT4OID, INT4OID,
	TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	static Oid	insert_oid = InvalidOid;
	static FmgrInfo insert_flinfo;
	Oid			oid;
	AclResult	aclresult;

	LOCAL_FCINFO(fcinfo, 11);

	if (!pgq_installed())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("checkout.events is pgq but extension \"pgq\" is not installed in this database"),
				 errdetail("The change was not made: its event could not be written."),
				 errhint("Install it (CREATE EXTENSION pgq) and create the queue (SELECT shop_events_create_queue()), or set checkout.events = off.")));

	/*
	 * Looked up at each call (pgq may be dropped and created again); loaded
	 * once per OID
	 */
	oid = LookupFuncName(list_make2(makeString("pgq"), makeString("insert_event_raw")),
						 11, argtypes, false);
	aclresult = object_aclcheck_compat(oid, GetUserId());
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, "pgq.insert_event_raw");
	if (oid != insert_oid)
	{
		fmgr_info_cxt(oid, &insert_flinfo, TopMemoryContext);
		insert_oid = oid;
	}

	InitFunctionCallInfoData(*fcinfo, &insert_flinfo, 11, InvalidOid, NULL, NULL);
	for (int i = 0; i < 11; i++)
	{
		fcinfo->args[i].value = (Datum) 0;
		fcinfo->args[i].isnull = true;
	}
	fcinfo->args[0].value = CStringGetTextDatum(checkout_events_queue);
	fcinfo->args[5].value = CStringGetTextDatum(kind);
	fcinfo->args[6].value = CStringGetTextDatum(json);
	fcinfo->args[7].value = CStringGetTextDatum(psprintf(INT64_FORMAT, event_id));
	fcinfo->args[8].value = CStringGetTextDatum(psprintf(INT64_FORMAT, order_id));
	fcinfo->args[0].isnull = fcinfo->args[5].isnull = fcinfo->args[6].isnull =
		fcinfo->args[7].isnull = fcinfo->args[8].isnull = false;
	(void) FunctionCallInvoke(fcinfo);
}

/*
 * Write one event of kind about order_id, its fields `fields` (the inside
 * of a JSON object: "\"a\": 1, \"b\": 2", or empty), to the sink, in the
 * current transaction; return its id.  nspoid is the extension's schema.
 * The sink must not be off.
 */
static int64
write_event(Oid nspoid, const char *kind, int64 order_id, const char *fields)
{
	Oid			seqoid;
	HeapTuple	seqtuple;
	Oid			writer;
	Oid			save_userid;
	int			save_sec_context;
	int64		event_id;
	StringInfoData json;
	ErrorContextCallback errcallback;
	EventWrite	write = {kind, order_id, (EventSink) checkout_events};

	seqoid = get_relname_relid("order_event_ids", nspoid);
	if (!OidIsValid(seqoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("order events need version 1.3 of extension \"checkout\""),
				 errdetail("checkout.events is \"%s\", but this database's checkout has no sequence order_event_ids.",
						   GetConfigOption("checkout.events", false, false)),
				 errhint("Run ALTER EXTENSION checkout UPDATE, or set checkout.events = off.")));
	if (checkout_events == EVENTS_LOGICAL && !XLogLogicalInfoActive())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("checkout.events is logical but wal_level is below logical"),
				 errdetail("The change was not made: its event could not be written."),
				 errhint("Set wal_level = logical and restart the server, or set checkout.events = pgq or off.")));

	seqtuple = SearchSysCache1(RELOID, ObjectIdGetDatum(seqoid));
	if (!HeapTupleIsValid(seqtuple))
		elog(ERROR, "checkout: cache lookup failed for relation %u", seqoid);
	writer = ((Form_pg_class) GETSTRUCT(seqtuple))->relowner;
	ReleaseSysCache(seqtuple);

	event_id = nextval_internal(seqoid, false);

	initStringInfo(&json);
	appendStringInfo(&json, "{\"schema_version\": %d, \"event_id\": " INT64_FORMAT ", \"kind\": ",
					 CHECKOUT_EVENTS_SCHEMA_VERSION, event_id);
	escape_json(&json, kind);
	appendStringInfo(&json, ", \"order_id\": " INT64_FORMAT ", \"occurred_at\": \"%s\"",
					 order_id,
					 JsonEncodeDateTime(NULL,
										TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
										TIMESTAMPTZOID, NULL));
	if (fields != NULL && fields[0] != '\0')
		appendStringInfo(&json, ", %s", fields);
	appendStringInfoChar(&json, '}');

	errcallback.callback = event_write_context;
	errcallback.arg = &write;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	if (checkout_events == EVENTS_LOGICAL)
		(void) checkout_log_logical_message(CHECKOUT_EVENTS_PREFIX, json.data, json.len);
	else
	{
		/*
		 * As the extension's owner for this statement only; an error on the
		 * way out is undone by the (sub)transaction's abort
		 */
		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		SetUserIdAndSecContext(writer, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		write_to_pgq(kind, event_id, order_id, json.data);
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}

	error_context_stack = errcallback.previous;
	pfree(json.data);
	return event_id;
}

/* Append a timestamptz as a JSON string */
static void
append_json_timestamp(StringInfo buf, TimestampTz ts)
{
	appendStringInfo(buf, "\"%s\"",
					 JsonEncodeDateTime(NULL, TimestampTzGetDatum(ts), TIMESTAMPTZOID, NULL));
}

/*
 * The units a placed order's event has shown of each stock line so far,
 * per location (the stock line's locations in their order), so that a
 * product on its own line and in bundles shows each unit once
 */
typedef struct Drawn
{
	const CartLine *stock;
	int			nstock;
	int32	  **taken;			/* per stock line, per location; NULL: none */
} Drawn;

/* The index of product_id's stock line */
static int
stock_index(const CartLine *stock, int nstock, int64 product_id)
{
	for (int k = 0; k < nstock; k++)
		if (stock[k].product_id == product_id)
			return k;
	elog(ERROR, "checkout: product " INT64_FORMAT " has no stock line", product_id);
	return -1;					/* keep the compiler quiet */
}

/*
 * Where units of stock line k came from, the next ones not shown yet: a
 * located line's allocation, else the default location (1)
 */
static void
append_allocations(StringInfo f, Drawn *drawn, int k, int32 units)
{
	const CartLine *line = &drawn->stock[k];
	bool		first = true;

	if (units <= 0)
		return;
	if (!line->loc.located)
	{
		appendStringInfo(f, "{\"location_id\": 1, \"quantity\": %d}", units);
		return;
	}
	if (drawn->taken == NULL)
		drawn->taken = palloc0(sizeof(int32 *) * drawn->nstock);
	if (drawn->taken[k] == NULL)
		drawn->taken[k] = palloc0(sizeof(int32) * (line->loc.nlocations + 1));
	for (int l = 0; l <= line->loc.nlocations && units > 0; l++)
	{
		int32		take = line->loc.location_ids[l] == 1 ?
		line->loc.default_take : line->loc.location_take[l];
		int32		give = Min(take - drawn->taken[k][l], units);

		if (give <= 0)
			continue;
		appendStringInfo(f, "%s{\"location_id\": " INT64_FORMAT ", \"quantity\": %d}",
						 first ? "" : ", ", line->loc.location_ids[l], give);
		drawn->taken[k][l] += give;
		units -= give;
		first = false;
	}
}

/* A bundle's line: the parts its units took, and where they came from */
static void
append_parts(StringInfo f, Drawn *drawn, const CartLine *bundle, const BundleParts *parts)
{
	bool		first = true;

	appendStringInfoString(f, ", \"parts\": [");
	for (int p = 0; p < parts->n; p++)
	{
		int			k;
		int32		units;

		if (DatumGetInt64(parts->bundle_ids[p]) != bundle->product_id)
			continue;
		k = stock_index(drawn->stock, drawn->nstock, DatumGetInt64(parts->product_ids[p]));
		units = DatumGetInt32(parts->quantities[p]) * bundle->quantity;
		appendStringInfo(f, "%s{\"product_id\": " INT64_FORMAT ", \"name\": ",
						 first ? "" : ", ", drawn->stock[k].product_id);
		escape_json(f, drawn->stock[k].name);
		appendStringInfo(f, ", \"quantity_per_unit\": %d, \"quantity\": %d, \"allocations\": [",
						 DatumGetInt32(parts->quantities[p]), units);
		append_allocations(f, drawn, k, units);
		appendStringInfoString(f, "]}");
		first = false;
	}
	appendStringInfoChar(f, ']');
}

/*
 * The placed event of the order shop_checkout() just wrote: the customer,
 * the idempotency key, the lines (product, name, quantity, unit price, share
 * of the discount, units preordered, where the units on hand came from; a
 * bundle's, the parts it took and where they came from), the voucher, the
 * subtotal, discount and total, and the payment deadline.  The stock lines
 * (stock, nstock) are the lines themselves in a cart without bundles
 * (bundles.c).  Called only when the events are on.
 */
void
events_order_placed(Oid nspoid, int64 order_id, int64 customer_id, text *key,
					const CartLine *lines, int nlines, const CartLine *stock, int nstock,
					const BundleParts *parts, int64 subtotal, const Voucher *voucher,
					int payment_window)
{
	StringInfoData f;
	Datum	   *shares = NULL;
	int64		discount = voucher != NULL ? voucher->discount_cents : 0;
	Drawn		drawn = {.stock = stock,.nstock = nstock};

	if (voucher != NULL)
	{
		int			nshares;

		deconstruct_array(DatumGetArrayTypeP(voucher->discount_shares),
						  INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &shares, NULL, &nshares);
	}

	initStringInfo(&f);
	appendStringInfo(&f, "\"status\": \"placed\", \"customer_id\": " INT64_FORMAT ", \"idempotency_key\": ",
					 customer_id);
	if (key != NULL)
		escape_json(&f, text_to_cstring(key));
	else
		appendStringInfoString(&f, "null");
	appendStringInfo(&f, ", \"subtotal_cents\": " INT64_FORMAT ", \"discount_cents\": " INT64_FORMAT
					 ", \"total_cents\": " INT64_FORMAT ", \"voucher\": ",
					 subtotal, discount, subtotal - discount);
	if (voucher != NULL)
	{
		appendStringInfo(&f, "{\"id\": " INT64_FORMAT ", \"code_id\": " INT64_FORMAT ", \"code\": ",
						 voucher->id, voucher->code_id);
		escape_json(&f, voucher->code_cstr);
		appendStringInfoChar(&f, '}');
	}
	else
		appendStringInfoString(&f, "null");
	appendStringInfoString(&f, ", \"payment_deadline\": ");
	if (payment_window > 0)
		append_json_timestamp(&f, GetCurrentTransactionStartTimestamp() +
							  (TimestampTz) payment_window * USECS_PER_SEC);
	else
		appendStringInfoString(&f, "null");

	appendStringInfoString(&f, ", \"lines\": [");
	for (int i = 0; i < nlines; i++)
	{
		const CartLine *line = &lines[i];

		/* its stock line (preorders and allocations): itself without bundles */
		int			k = stock == lines ? i :
		line->bundle.is_bundle ? -1 : stock_index(stock, nstock, line->product_id);
		int32		preordered = k >= 0 ? stock[k].pre.preordered : 0;

		appendStringInfo(&f, "%s{\"product_id\": " INT64_FORMAT ", \"name\": ",
						 i == 0 ? "" : ", ", line->product_id);
		escape_json(&f, line->name);
		appendStringInfo(&f, ", \"quantity\": %d, \"unit_price_cents\": " INT64_FORMAT
						 ", \"discount_cents\": " INT64_FORMAT
						 ", \"preordered_quantity\": %d, \"allocations\": [",
						 line->quantity, line->unit_price_cents,
						 shares != NULL ? DatumGetInt64(shares[i]) : (int64) 0,
						 preordered);
		if (k >= 0)
			append_allocations(&f, &drawn, k, line->quantity - preordered);
		appendStringInfoChar(&f, ']');
		if (line->bundle.is_bundle)
			append_parts(&f, &drawn, line, parts);
		appendStringInfoChar(&f, '}');
	}
	appendStringInfoChar(&f, ']');

	(void) write_event(nspoid, "placed", order_id, f.data);
	pfree(f.data);
}

/*
 * shop_order_event(kind text, order_id bigint, data jsonb) RETURNS bigint,
 * since 1.3: write an event of the order change the calling function made
 * (paid, cancelled, expired, preorder_filled) with data's fields; returns
 * its id, or NULL when checkout.events is off.  Not executable by PUBLIC:
 * the extension's functions call it.
 */
Datum
shop_order_event(PG_FUNCTION_ARGS)
{
	char	   *kind;
	char	   *data;
	bool		known = false;
	size_t		len;

	if (checkout_events == EVENTS_OFF)
		PG_RETURN_NULL();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event kind and order id must not be NULL")));
	kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	for (int i = 0; event_kinds[i] != NULL; i++)
		known |= strcmp(kind, event_kinds[i]) == 0;
	if (!known)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown order event kind \"%s\"", kind),
				 errhint("The kinds are placed, paid, cancelled, expired and preorder_filled.")));

	/* The object's fields, without its braces */
	data = PG_ARGISNULL(2) ? pstrdup("{}") :
		JsonbToCString(NULL, &PG_GETARG_JSONB_P(2)->root, 0);
	len = strlen(data);
	if (len < 2 || data[0] != '{' || data[len - 1] != '}')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order event data must be a JSON object")));
	data[len - 1] = '\0';

	PG_RETURN_INT64(write_event(get_func_namespace(fcinfo->flinfo->fn_oid), kind,
								PG_GETARG_INT64(1), data + 1));
}
