/*-------------------------------------------------------------------------
 *
 * guard.c
 *		The uninstall guard: DROP EXTENSION checkout, or DROP SCHEMA of the
 *		extension's schema, fails on a shop whose orders table has a row,
 *		unless checkout.allow_drop is on.
 *
 * The shop's tables are the extension's members, so PostgreSQL drops them,
 * and every order in them, with the extension, as it drops any extension's
 * objects, and nothing asks.  An event trigger at ddl_command_start
 * (checkout_guard_drop, a member of the extension since 1.2) runs
 * shop_guard_drop() before the command drops anything, sees the command's
 * parse tree, and raises an error that names the way through on purpose.
 * A sql_drop trigger would come too late (the tables are gone by then, and
 * a PL/pgSQL one is dropped with the extension before it fires).
 *
 * What it cannot stop, documented in the README: a superuser can disable
 * event triggers (ALTER EVENT TRIGGER ... DISABLE, or session_replication_role
 * = replica, which they do not fire under); DROP OWNED BY the extension's
 * owner and DROP DATABASE drop it too; a backend that loaded an older
 * library than the installed scripts fails the command instead (it cannot
 * find this function), which is safe.
 *
 * Locking and memory rules.  One read-only SPI query in the command's
 * transaction, on the statement's snapshot, taking AccessShareLock on
 * orders; everything lives in the SPI procedure context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "checkout.h"
#include "statements.h"

/* checkout.allow_drop: let DROP EXTENSION checkout delete a shop with orders */
static bool checkout_allow_drop = false;

/* The setting (from _PG_init) */
void
checkout_guard_init(void)
{
	DefineCustomBoolVariable("checkout.allow_drop",
							 "Lets DROP EXTENSION checkout drop a shop whose orders table has rows.",
							 "DROP EXTENSION checkout drops the shop's tables and every row in them. "
							 "Off, it is refused while there is an order.",
							 &checkout_allow_drop,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
}

/* Whether the list of names of a DROP holds name */
static bool
names_include(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		Node	   *object = lfirst(lc);

		if (IsA(object, String) && strcmp(strVal(object), name) == 0)
			return true;
	}
	return false;
}

/* Whether the orders table of schema nspname has a row */
static bool
shop_has_orders(const char *nspname)
{
	bool		has_orders;
	char	   *sql = psprintf("SELECT EXISTS (SELECT FROM %s.orders)",
							   quote_identifier(nspname));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "checkout: SPI_connect failed");
	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "checkout: looking for orders failed");
	has_orders = DatumGetBool(stmt_value(0, 1));
	SPI_finish();
	return has_orders;
}

PG_FUNCTION_INFO_V1(shop_guard_drop);

/*
 * shop_guard_drop() RETURNS event_trigger, at ddl_command_start of DROP
 * EXTENSION and DROP SCHEMA: refuse to drop checkout, or its schema, while
 * its orders table has a row (2BP01), unless checkout.allow_drop is on
 */
Datum
shop_guard_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	DropStmt   *drop;
	char	   *nspname;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "checkout: shop_guard_drop() must be called as an event trigger");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (checkout_allow_drop || !IsA(trigdata->parsetree, DropStmt))
		PG_RETURN_VOID();

	/* This function lives in the extension's schema */
	drop = (DropStmt *) trigdata->parsetree;
	nspname = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));
	if (nspname == NULL ||
		!((drop->removeType == OBJECT_EXTENSION && names_include(drop->objects, "checkout")) ||
		  (drop->removeType == OBJECT_SCHEMA && names_include(drop->objects, nspname))))
		PG_RETURN_VOID();

	if (shop_has_orders(nspname))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension checkout while its orders table has rows"),
				 errdetail("Dropping the extension drops the shop's tables in schema \"%s\" (products, customers, cart_items, orders, order_items, stock_movements and the rest) and every row in them.",
						   nspname),
				 errhint("Dump the database first (pg_dump). To drop the shop with its orders, SET checkout.allow_drop = on, then drop it again.")));
	PG_RETURN_VOID();
}
