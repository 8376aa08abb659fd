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

#endif							/* CHECKOUT_COMPAT_H */
