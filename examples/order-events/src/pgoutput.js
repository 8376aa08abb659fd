// pgoutput.js: the few messages of PostgreSQL's pgoutput plugin (logical
// replication protocol, version 1) that a slot on an empty publication with
// messages = true produces, as pg_logical_slot_peek_binary_changes() returns
// them (one message per row):
//
//   'B' Begin:   Int64 final LSN, Int64 commit time, Int32 xid
//   'M' Message: Int8 flags (1 = transactional), Int64 LSN,
//                String prefix (NUL-terminated), Int32 length, Byte[length]
//   'C' Commit:  Int8 flags, Int64 commit LSN, Int64 end LSN, Int64 commit time
//
// Any other message (Relation, Type, Origin; none come from an empty
// publication) is passed over.  The protocol is documented in PostgreSQL's
// "Logical Replication Message Formats".

/** An LSN as PostgreSQL writes it ("0/1B28038") from a 64-bit number. */
export function formatLsn(value) {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * The committed transactions in rows (each {data: Buffer}), in commit order:
 * [{xid, endLsn, messages: [content as text]}], with the contents of the
 * transactional messages whose prefix is `prefix`.  A transaction whose
 * commit is not among the rows is left out (the SQL functions stop only at
 * commits, so there is none).
 */
export function committedTransactions(rows, prefix) {
  const done = [];
  let open = null;
  for (const { data } of rows) {
    const type = String.fromCharCode(data[0]);
    if (type === 'B') {
      open = { xid: data.readUInt32BE(17), endLsn: null, messages: [] };
    } else if (type === 'M') {
      const transactional = (data[1] & 1) === 1;
      const end = data.indexOf(0, 10);
      const messagePrefix = data.toString('utf8', 10, end);
      const length = data.readUInt32BE(end + 1);
      const content = data.toString('utf8', end + 5, end + 5 + length);
      if (transactional && open !== null && messagePrefix === prefix) open.messages.push(content);
    } else if (type === 'C') {
      if (open !== null) {
        open.endLsn = formatLsn(data.readBigUInt64BE(10));
        done.push(open);
      }
      open = null;
    }
  }
  return done;
}
