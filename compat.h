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

#include "replication/message.h"

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

#endif							/* CHECKOUT_COMPAT_H */
