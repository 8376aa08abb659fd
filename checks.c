/*-------------------------------------------------------------------------
 *
 * checks.c
 *		The CHECK constraints of the shop's tables, compiled once per
 *		backend (1.3).
 *
 * PostgreSQL 15 to 18 build a table's CHECK expressions again for every
 * execution of a statement that writes it (ExecRelCheck: the stored text
 * parsed by stringToNode, then planned by expression_planner, then
 * initialized), which for a one-line checkout was a few percent of its
 * CPU.  For the tables of the extension's schema this module keeps each
 * table's planned expressions per backend, and at executor start gives
 * every result relation with CHECK constraints its own copy, initialized
 * (ExecInitExpr) into the execution's memory, exactly as ExecRelCheck
 * would have built them on its first row: the same constraints, in the
 * same order, evaluated by PostgreSQL on every row.  Only where the
 * expressions come from changes.
 *
 * A table's entry is dropped when its relcache entry is invalidated (any
 * change of the table, its columns or its constraints, by any session: a
 * change takes an AccessExclusiveLock, so no statement that writes the
 * table runs meanwhile), and all of them when every relcache entry is, or
 * when any function changes (planning may have inlined a SQL function's
 * body or folded an immutable function's result into an expression, as a
 * cached plan does, which PostgreSQL replans then); an entry overtaken by
 * an invalidation while it was being built is not kept and not used:
 * PostgreSQL then builds that execution's expressions itself.
 *
 * Memory rules.  Each table's planned expressions live in a memory context
 * of their own under CacheMemoryContext, deleted with the entry; an
 * execution initializes a copy of them in its per-query context, so a
 * deleted entry never held an expression in use.
 *
 * Locking rules.  None taken: the executor holds every result relation
 * locked from its start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "optimizer/optimizer.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "checkout.h"
#include "compat.h"

/* A table's CHECK expressions, planned; NULL where one is not enforced */
typedef struct CompiledChecks
{
	Oid			relid;			/* the key */
	int			ncheck;
	MemoryContext context;
	Expr	  **exprs;
} CompiledChecks;

static HTAB *compiled = NULL;

/* The extension's schema (InvalidOid: not known yet, nothing is done) */
static Oid	checks_nspoid = InvalidOid;

/* Counts the invalidations, so that a build they overtook is not kept */
static uint64 invalidations = 0;

static ExecutorStart_hook_type prev_executor_start = NULL;

/* Drop an entry and its expressions */
static void
drop_entry(CompiledChecks *entry)
{
	Oid			relid = entry->relid;

	MemoryContextDelete(entry->context);
	(void) hash_search(compiled, &relid, HASH_REMOVE, NULL);
}

/* Drop every entry */
static void
drop_all(void)
{
	HASH_SEQ_STATUS status;
	CompiledChecks *entry;

	hash_seq_init(&status, compiled);
	while ((entry = hash_seq_search(&status)) != NULL)
		drop_entry(entry);
}

/* A relation's relcache entry was invalidated (InvalidOid: all of them) */
static void
relation_changed(Datum arg, Oid relid)
{
	CompiledChecks *entry;

	invalidations++;
	if (compiled == NULL)
		return;
	if (!OidIsValid(relid))
		drop_all();
	else if ((entry = hash_search(compiled, &relid, HASH_FIND, NULL)) != NULL)
		drop_entry(entry);
}

/*
 * A function changed (any: a CHECK's planned expression may have inlined a
 * SQL function's body, or folded an immutable one's result, as a cached
 * plan does, which is replanned then)
 */
static void
function_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	invalidations++;
	if (compiled != NULL)
		drop_all();
}

/*
 * Plan rel's CHECK expressions into a new entry, as ExecRelCheck builds
 * them before it initializes them; NULL when an invalidation came in
 * meanwhile (then nothing is kept)
 */
static CompiledChecks *
compile(Relation rel)
{
	TupleConstr *constr = rel->rd_att->constr;
	uint64		before = invalidations;
	MemoryContext context;
	MemoryContext old;
	Expr	  **exprs;
	CompiledChecks *entry;
	Oid			relid = RelationGetRelid(rel);
	bool		found;

	context = AllocSetContextCreate(CacheMemoryContext, "checkout CHECK expressions",
									ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(context);
	exprs = palloc0(sizeof(Expr *) * constr->num_check);
	for (int i = 0; i < constr->num_check; i++)
	{
		if (!checkout_check_enforced(constr->check[i]))
			continue;
		exprs[i] = expression_planner(checkout_check_expand(stringToNode(constr->check[i].ccbin),
															rel));
	}
	MemoryContextSwitchTo(old);
	if (invalidations != before)
	{
		MemoryContextDelete(context);
		return NULL;
	}

	entry = hash_search(compiled, &relid, HASH_ENTER, &found);
	entry->ncheck = constr->num_check;
	entry->context = context;
	entry->exprs = exprs;
	return entry;
}

/* Give a result relation its CHECK expressions, from its table's entry */
static void
fill_checks(ResultRelInfo *rri, EState *estate)
{
	Relation	rel = rri->ri_RelationDesc;
	TupleConstr *constr = rel->rd_att->constr;
	Oid			relid = RelationGetRelid(rel);
	CompiledChecks *entry;
	int			ncheck;
	Expr	  **copies;
	ExprState **states;
	MemoryContext old;

	/* as ExecRelCheck, which reports the mismatch: leave it to it */
	if (constr->num_check != rel->rd_rel->relchecks)
		return;
	entry = hash_search(compiled, &relid, HASH_FIND, NULL);
	if (entry == NULL && (entry = compile(rel)) == NULL)
		return;
	if (entry->ncheck != constr->num_check)
		return;

	/*
	 * Copied first, then initialized: initializing may look up the catalogs,
	 * take in invalidations and so drop the entry
	 */
	old = MemoryContextSwitchTo(estate->es_query_cxt);
	ncheck = entry->ncheck;
	copies = palloc0(sizeof(Expr *) * ncheck);
	for (int i = 0; i < ncheck; i++)
		if (entry->exprs[i] != NULL)
			copies[i] = copyObject(entry->exprs[i]);
	states = palloc0(sizeof(ExprState *) * ncheck);
	for (int i = 0; i < ncheck; i++)
		if (copies[i] != NULL)
			states[i] = ExecInitExpr(copies[i], NULL);
	MemoryContextSwitchTo(old);
	checkout_check_exprs(rri) = states;
}

/*
 * ExecutorStart_hook: after the executor's start, the result relations of
 * the extension's tables with CHECK constraints get theirs
 */
static void
checks_executor_start(QueryDesc *queryDesc, int eflags)
{
	ListCell   *lc;

	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	if (!OidIsValid(checks_nspoid) || (eflags & EXEC_FLAG_EXPLAIN_ONLY) ||
		queryDesc->estate == NULL)
		return;
	foreach(lc, queryDesc->estate->es_opened_result_relations)
	{
		ResultRelInfo *rri = (ResultRelInfo *) lfirst(lc);
		Relation	rel = rri->ri_RelationDesc;

		if (rel->rd_att->constr == NULL || rel->rd_att->constr->num_check == 0 ||
			RelationGetNamespace(rel) != checks_nspoid ||
			checkout_check_exprs(rri) != NULL)
			continue;
		fill_checks(rri, queryDesc->estate);
	}
}

/* The tables of schema nspoid are the extension's (checkout_use_schema) */
void
checkout_checks_use_schema(Oid nspoid)
{
	checks_nspoid = nspoid;
}

/* Install the hook and watch the invalidations (from _PG_init) */
void
checkout_checks_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(CompiledChecks);
	ctl.hcxt = TopMemoryContext;
	compiled = hash_create("checkout CHECK expressions", 32, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(relation_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, function_changed, (Datum) 0);
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = checks_executor_start;
}
