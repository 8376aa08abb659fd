/*-------------------------------------------------------------------------
 *
 * compat.h
 *		What differs between the PostgreSQL majors checkout supports (15,
 *		17, 18), in one place: every PG_VERSION_NUM test of the C is here.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CHECKOUT_COMPAT_H
#define CHECKOUT_COMPAT_H

#include "catalog/pg_proc.h"
#include "replication/message.h"
#include "utils/acl.h"

/*
 * A transactional logical decoding message.  PostgreSQL 17 added a flush
 * argument (flush the WAL at once, for non-transactional messages only);
 * a transactional message is flushed with its commit.
 */
#if PG_VERSION_NUM >= 170000
#define checkout_log_logical_message(prefix, message, size) \
	LogLogicalMessage((prefix), (message), (size), true, false)
#else
#define checkout_log_logical_message(prefix, message, size) \
	LogLogicalMessage((prefix), (message), (size), true)
#endif

/*
 * The EXECUTE right of role on function oid.  PostgreSQL 16 replaced the
 * per-kind ACL checks with object_aclcheck().
 */
#if PG_VERSION_NUM >= 160000
#define object_aclcheck_compat(oid, role) \
	object_aclcheck(ProcedureRelationId, (oid), (role), ACL_EXECUTE)
#else
#define object_aclcheck_compat(oid, role) \
	pg_proc_aclcheck((oid), (role), ACL_EXECUTE)
#endif

/*
 * A result relation's CHECK expressions as ExecRelCheck builds them
 * (checks.c).  PostgreSQL 18 renamed the field, skips the constraints
 * that are NOT ENFORCED and expands virtual generated columns in them.
 */
#if PG_VERSION_NUM >= 180000
#include "rewrite/rewriteHandler.h"
#define checkout_check_exprs(rri) ((rri)->ri_CheckConstraintExprs)
#define checkout_check_enforced(check) ((check).ccenforced)
#define checkout_check_expand(node, rel) \
	((Expr *) expand_generated_columns_in_expr((Node *) (node), (rel), 1))
#else
#define checkout_check_exprs(rri) ((rri)->ri_ConstraintExprs)
#define checkout_check_enforced(check) true
#define checkout_check_expand(node, rel) ((Expr *) (node))
#endif

#endif							/* CHECKOUT_COMPAT_H */
