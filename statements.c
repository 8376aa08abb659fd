/*-------------------------------------------------------------------------
 *
 * statements.c
 *		The engine that runs the checkout's SQL statements: each C file
 *		keeps a table of its own statements (Statement, statements.h),
 *		next to the code that runs them; this prepares each statement once
 *		per backend, the first time it runs, for the extension's schema and
 *		version, keeps its plan and runs it (stmt_execute).  Also the small
 *		helpers that pass statements parameters and read their results.
 *
 * Versions.  A library of version 1.1 or later also serves a database where
 * the extension is still at 1.0 (installed, not yet updated): then the
 * statements since 1.1 are not available, the others leave out what 1.0
 * lacks (purchase limits, payment window, expiry: version_pieces()), and
 * the plans are prepared again once the extension is updated.  Likewise
 * the statements since 1.2 are available only where its tables are (the
 * voucher slots), and those since 1.3 where its functions are.
 *
 * Memory rules.  A statement's plan is prepared with SPI_prepare_cursor as
 * a generic plan and kept (SPI_keepplan) in its Statement for the life of
 * the backend, with the generation of the schema it was made for; when
 * the extension's schema changes (its OID, its name, its version: a schema
 * renamed, the extension updated, or dropped and created again), the
 * generation moves on and each plan is prepared again at its next run.
 * The schema's name and the statements' pieces are kept in a memory
 * context of their own.  Everything the helpers return lives in the current
 * (SPI procedure) context.  Must be called while connected to SPI.
 *
 * Locking rules.  None here: which statement takes which row lock is said
 * at each statement, in the file that runs it, and in checkout.c's header
 * comment.  Preparing a plan locks the relations it reads (AccessShareLock,
 * as running it does).
 *
 * Security.  Every statement names its tables through the extension's
 * schema, quoted with quote_identifier, and qualifies its operators and
 * functions with pg_catalog, so nothing earlier on search_path can capture
 * them.  Values go in only as SPI parameters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "statements.h"

/*
 * The schema the plans are for (InvalidOid: none yet), its name and
 * version, the pieces its statements are prepared with (pieces[] for the
 * install's version, plain_pieces[] for 1.0's; all in schema_cxt), and
 * the generation a plan must have been prepared in to be used.  schema_checked says nothing
 * in the catalogs changed since the schema was looked at (a syscache
 * callback clears it), so that a call need not look again.
 */
#define NUM_PIECES 6

static Oid	schema_oid = InvalidOid;
static char *schema_name = NULL;
static bool schema_is_1_0 = false;
static bool schema_has_vouchers = false;
static bool schema_is_1_3 = false;
static bool schema_checked = false;
static MemoryContext schema_cxt = NULL;
static const char *pieces[NUM_PIECES];
static const char *plain_pieces[NUM_PIECES];
static uint32 generation = 0;

/*
 * Prepare one statement with these pieces and keep its plan for the life
 * of the backend
 */
static SPIPlanPtr
keep_plan(const Statement *stmt, const char *const *with)
{
	StringInfoData sql;
	SPIPlanPtr	plan;

	/* Not appendStringInfo: a statement need not use every piece */
	initStringInfo(&sql);
	for (const char *p = stmt->sql; *p; p++)
	{
		if (p[0] == '%' && p[1] >= '1' && p[1] <= '0' + NUM_PIECES &&
			p[2] == '$' && p[3] == 's')
		{
			appendStringInfoString(&sql, with[p[1] - '1']);
			p += 3;
		}
		else
			appendStringInfoChar(&sql, *p);
	}

	/*
	 * Generic plans: the statements are simple lookups by key, so there is
	 * nothing a custom plan could do better, and planning each call costs
	 * more than running it.
	 */
	plan = SPI_prepare_cursor(sql.data, stmt->nargs, (Oid *) stmt->argtypes,
							  CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "checkout: SPI_prepare failed for \"%s\": %s",
			 sql.data, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "checkout: SPI_keepplan failed");
	pfree(sql.data);
	return plan;
}

/* The orders' id sequence of schema qschema, as a quoted literal */
static const char *
orders_sequence(const char *qschema)
{
	char	   *sql = psprintf("SELECT pg_catalog.quote_literal(pg_catalog.pg_get_serial_sequence(%s, 'id'))",
							   quote_literal_cstr(psprintf("%s.orders", qschema)));

	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "checkout: finding the sequence of the orders' ids failed");
	return TextDatumGetCString(stmt_value(0, 1));
}

/*
 * The pieces "%3$s" to "%6$s" of the statements, which differ between
 * versions (statements.h), in the current memory context.  Version 1.0 has no payment
 * window and no limits; the plain statements are prepared with its pieces.
 */
static void
version_pieces(bool is_1_0, const char *qschema, const char **into)
{
	if (is_1_0)
	{
		into[0] = "false";
		into[1] = "false";
		into[2] = "";
		into[3] = "";
		return;
	}

	/*
	 * Driven by the placed orders past their window (a partial index), each
	 * probing its line of the product by primary key (OFFSET 0: never a scan
	 * of the product's every sale)
	 */
	into[0] = psprintf("EXISTS (SELECT FROM %1$s.orders AS o"
					   LEFT_OVER_OF_LINE("p.id")
					   "         WHERE o.status OPERATOR(pg_catalog.=) 'placed'"
					   "           AND o.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
					   "           AND x.left_over OPERATOR(pg_catalog.>) 0)",
					   qschema);
	into[1] = psprintf("EXISTS (SELECT FROM %1$s.purchase_limits AS l"
					   "         WHERE l.product_id OPERATOR(pg_catalog.=) c.product_id)",
					   qschema);
	into[2] = ", expires_at";
	into[3] = ", CASE WHEN $11 OPERATOR(pg_catalog.>) 0"
		"       THEN pg_catalog.now() OPERATOR(pg_catalog.+)"
		"            pg_catalog.make_interval(secs => $11)"
		"  END";
}

/*
 * Whether schema nspname has shop_feature_used() (since 1.3), so that the
 * feature tables have the triggers that let features.c cache what the shop
 * uses
 */
static bool
has_feature_trigger(const char *nspname)
{
	return OidIsValid(LookupFuncName(list_make2(makeString(pstrdup(nspname)),
												makeString("shop_feature_used")),
									 0, NULL, true));
}

/* A schema, a relation or a function changed: look at the schema again at the next call */
static void
catalog_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	schema_checked = false;
}

/* Watch the catalogs the plans depend on (from _PG_init) */
void
stmt_init(void)
{
	CacheRegisterSyscacheCallback(NAMESPACEOID, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(RELNAMENSP, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCNAMEARGSNSP, catalog_changed, (Datum) 0);
}

/*
 * Make the statements name the tables of schema nspoid (the schema
 * shop_checkout() lives in) and fit the extension's version there.  Looks
 * at the catalogs only when they changed since the last call; then fills
 * *schema and returns true (the caller resets what it caches of the
 * schema), else returns false.  Must be called while connected to SPI.
 */
bool
stmt_use_schema(Oid nspoid, StatementSchema *schema)
{
	char	   *nspname;
	bool		is_1_0;
	bool		has_vouchers;
	bool		is_1_3;
	const char *sequence;
	MemoryContext old;

	if (schema_checked && schema_oid == nspoid)
		return false;

	nspname = get_namespace_name(nspoid);
	if (nspname == NULL)
		elog(ERROR, "checkout: schema with OID %u does not exist", nspoid);
	is_1_0 = !OidIsValid(get_relname_relid("purchase_limits", nspoid));
	has_vouchers = OidIsValid(get_relname_relid("voucher_slots", nspoid));
	is_1_3 = has_feature_trigger(nspname);
	schema_checked = true;
	schema->nspoid = nspoid;
	schema->is_1_0 = is_1_0;
	schema->is_1_3 = is_1_3;

	if (schema_oid == nspoid && schema_name != NULL &&
		strcmp(schema_name, nspname) == 0 && schema_is_1_0 == is_1_0 &&
		schema_has_vouchers == has_vouchers && schema_is_1_3 == is_1_3)
		return true;

	/* another schema, or another version: every plan is prepared again */
	schema_oid = InvalidOid;
	generation++;
	if (schema_cxt == NULL)
		schema_cxt = AllocSetContextCreate(TopMemoryContext, "checkout statements",
										   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(schema_cxt);
	sequence = orders_sequence(quote_identifier(nspname));
	/* after SPI_execute: it leaves the SPI procedure context current */
	old = MemoryContextSwitchTo(schema_cxt);
	schema_name = pstrdup(nspname);
	pieces[0] = plain_pieces[0] = pstrdup(quote_identifier(nspname));
	pieces[1] = plain_pieces[1] = pstrdup(sequence);
	version_pieces(is_1_0, pieces[0], &pieces[2]);
	version_pieces(true, pieces[0], &plain_pieces[2]);
	MemoryContextSwitchTo(old);
	schema_is_1_0 = is_1_0;
	schema_has_vouchers = has_vouchers;
	schema_is_1_3 = is_1_3;
	schema_oid = nspoid;
	return true;
}

/* Whether statement stmt is available: of a version this install has */
bool
stmt_available(const Statement *stmt)
{
	switch (stmt->since)
	{
		case SINCE_1_0:
			return true;
		case SINCE_1_1:
			return !schema_is_1_0;
		case SINCE_1_2:
			return schema_has_vouchers;
		case SINCE_1_3:
			return schema_is_1_3;
	}
	return false;
}

/*
 * Run statement stmt with these arguments (nulls as SPI takes them), for at
 * most count rows (0: all); return the number of rows it processed.  Its
 * plan is prepared the first time it runs for the schema.  Any other
 * result than the statement's own is an error that cannot happen.
 */
uint64
stmt_execute(Statement *stmt, Datum *values, const char *nulls, long count)
{
	int			rc;

	if (stmt->generation != generation || stmt->plan == NULL)
	{
		if (!OidIsValid(schema_oid) || !stmt_available(stmt))
			elog(ERROR, "checkout: statement \"%s\" is not prepared for this install",
				 stmt->what);
		if (stmt->plan != NULL)
			SPI_freeplan(stmt->plan);
		stmt->plan = NULL;
		stmt->plan = keep_plan(stmt, stmt->plain ? plain_pieces : pieces);
		stmt->generation = generation;
	}
	rc = SPI_execute_plan(stmt->plan, values, nulls, stmt->read_only, count);
	if (rc != stmt->ok)
		elog(ERROR, "checkout: %s failed: %s", stmt->what, SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * shop_reclaim_expired(bigint[]) of the schema the plans are for, the
 * checkout's last resort before SH001 (not cached: the extension may have
 * been dropped and created again in that schema); InvalidOid before 1.1
 */
Oid
stmt_reclaim_function(void)
{
	Oid			argtypes[1] = {INT8ARRAYOID};

	if (schema_is_1_0)
		return InvalidOid;
	return LookupFuncName(list_make2(makeString(schema_name),
									 makeString("shop_reclaim_expired")),
						  1, argtypes, false);
}

/* Fetch column col of row row of the last SPI result, which must not be NULL */
Datum
stmt_value(int row, int col)
{
	bool		isnull;
	Datum		value;

	value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						  col, &isnull);
	if (isnull)
		elog(ERROR, "checkout: unexpected NULL in column %d", col);
	return value;
}

/* A bigint[] of n values, for an SPI parameter */
Datum
stmt_bigint_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* An integer[] of n values, for an SPI parameter */
Datum
stmt_int_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, INT4OID, sizeof(int32),
										   true, TYPALIGN_INT));
}

/* A tid[] of n values (pointers to ItemPointerData), for an SPI parameter */
Datum
stmt_tid_array(Datum *values, int n)
{
	return PointerGetDatum(construct_array(values, n, TIDOID,
										   sizeof(ItemPointerData), false,
										   TYPALIGN_SHORT));
}
