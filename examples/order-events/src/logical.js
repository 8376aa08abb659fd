// logical.js: order events from logical decoding (checkout.events = logical).
//
// The extension writes each event as a transactional logical decoding
// message with the prefix checkout.order_event: it is decoded only if its
// transaction commits, in commit order.  A replication slot with the
// pgoutput plugin, on an empty publication (no table's rows) with
// messages = true, carries just those messages.
//
// A batch is the committed transactions one peek returns (at most about
// maxChanges messages).  Peeking does not move the slot: the batch is
// acknowledged with pg_replication_slot_advance() to the end of its last
// commit only after every event in it was delivered, so a consumer that dies
// or loses its database before that peeks the same transactions again (at
// least once).  PostgreSQL writes a slot's position to disk at checkpoints:
// after a crash of the server the slot may be back where the last checkpoint
// saw it, and transactions acknowledged since come again.  The receiver drops
// those repeats by event id.
import { committedTransactions } from './pgoutput.js';
import { parseEvent } from './event.js';
import { log, plural } from './retry.js';

export const EVENT_PREFIX = 'checkout.order_event';

export class LogicalSource {
  constructor({ slot, publication, maxChanges = 1000 }) {
    this.slot = slot;
    this.publication = publication;
    this.maxChanges = maxChanges;
    this.name = `logical slot ${slot}, publication ${publication}`;
  }

  /**
   * Check the slot; create the publication and the slot when they are not
   * there (the slot sees only what commits after its creation).
   */
  async open(client) {
    const { rows: [setup] } = await client.query(
      `SELECT current_setting('wal_level') AS wal_level,
              (SELECT plugin FROM pg_replication_slots
                WHERE slot_name = $1 AND database = current_database()) AS plugin,
              EXISTS (SELECT FROM pg_publication WHERE pubname = $2) AS publication`,
      [this.slot, this.publication]);
    if (setup.wal_level !== 'logical') {
      throw new Error(`wal_level is ${setup.wal_level}: order events to a slot need wal_level = logical`);
    }
    if (!setup.publication) {
      await client.query(`CREATE PUBLICATION ${client.escapeIdentifier(this.publication)}`);
      log(`created publication ${this.publication} (empty: the slot carries only messages)`);
    }
    if (setup.plugin === null) {
      await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [this.slot]);
      log(`created replication slot ${this.slot}: it gets the events that commit from now on`);
    } else if (setup.plugin !== 'pgoutput') {
      throw new Error(`replication slot ${this.slot} uses plugin ${setup.plugin}, not pgoutput`);
    }
  }

  /** The next batch ({label, events, ack}), or null when no transaction committed since the last. */
  async next(client) {
    const { rows } = await client.query(
      `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2,
         'proto_version', '1', 'publication_names', $3, 'messages', 'true')`,
      [this.slot, this.maxChanges, this.publication]);
    const transactions = committedTransactions(rows, EVENT_PREFIX);
    if (transactions.length === 0) return null;
    const endLsn = transactions[transactions.length - 1].endLsn;
    const events = [];
    for (const { xid, messages } of transactions) {
      for (const content of messages) {
        const event = parseEvent(content);
        if (event === null) log(`transaction ${xid}: skipped a ${EVENT_PREFIX} message that is not an order event`);
        else events.push(event);
      }
    }
    return {
      label: `logical batch to ${endLsn} (${plural(transactions.length, 'transaction')})`,
      events,
      ack: (c) => c.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [this.slot, endLsn]),
    };
  }
}
