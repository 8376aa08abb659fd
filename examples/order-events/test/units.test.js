// The parts that need no database (node --test): pgoutput's messages, the
// receiver's dropping of repeats, the delivery's retries.  test/order-events.sh
// at the repository's top runs the whole consumer against a real server.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { test } from 'node:test';
import { committedTransactions, formatLsn } from '../src/pgoutput.js';
import { createReceiver } from '../src/receiver.js';
import { deliver } from '../src/webhook.js';

const u64 = (value) => {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(value);
  return buf;
};
const begin = (xid) => Buffer.concat([Buffer.from('B'), u64(0x1000n), u64(0n), Buffer.from([0, 0, 0, xid])]);
const message = (prefix, text, transactional = true) => {
  const content = Buffer.from(text);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(content.length);
  return Buffer.concat([Buffer.from('M'), Buffer.from([transactional ? 1 : 0]), u64(0x1000n),
    Buffer.from(`${prefix}\0`), length, content]);
};
const commit = (end) => Buffer.concat([Buffer.from('C'), Buffer.from([0]), u64(0x1000n), u64(end), u64(0n)]);
const rows = (...messages) => messages.map((data) => ({ data }));

test('an LSN is written as PostgreSQL writes it', () => {
  assert.equal(formatLsn(0n), '0/0');
  assert.equal(formatLsn(0x1001b28038n), '10/1B28038');
});

test('committed transactions keep only their messages of the prefix, in order', () => {
  const got = committedTransactions(rows(
    begin(7), message('checkout.order_event', '{"event_id": 1}'), message('other', 'x'),
    message('checkout.order_event', '{"event_id": 2, "name": "Lämp"}'), commit(0x2000n),
    message('checkout.order_event', '{"event_id": 9}', false), // not transactional: not ours
    begin(8), message('checkout.test.mark', ''), commit(0x1_0000_3000n),
    begin(9), message('checkout.order_event', '{"event_id": 3}'), // no commit among the rows
  ), 'checkout.order_event');
  assert.deepEqual(got, [
    { xid: 7, endLsn: '0/2000', messages: ['{"event_id": 1}', '{"event_id": 2, "name": "Lämp"}'] },
    { xid: 8, endLsn: '1/3000', messages: [] },
  ]);
});

async function listening(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${server.address().port}/`;
}

test('the receiver answers a repeat 200 and counts it once', async (t) => {
  const { server, stats } = createReceiver();
  t.after(() => server.close());
  const url = await listening(server);
  const post = (key, body) => fetch(url, {
    method: 'POST', headers: { 'idempotency-key': key }, body: JSON.stringify(body),
  }).then(async (res) => [res.status, await res.json()]);
  assert.deepEqual(await post('5', { event_id: 5 }), [200, { repeat: false }]);
  assert.deepEqual(await post('5', { event_id: 5 }), [200, { repeat: true }]);
  assert.equal((await post('6', { event_id: 5 }))[0], 400);
  assert.deepEqual(stats(), { deliveries: 2, events: 1, repeats: 1, delay_ms: 0 });
  server.closeAllConnections();
});

test('a delivery is retried after a 5xx, a timeout and a reset connection', async (t) => {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => {
      if (requests === 1) res.writeHead(503).end();
      else if (requests === 2) setTimeout(() => res.writeHead(200).end(), 500); // too late
      else if (requests === 3) req.socket.destroy();
      else res.writeHead(204).end();
    });
  });
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = await listening(server);
  const event = { id: '7', kind: 'placed', orderId: '3', json: '{"event_id": 7}' };
  const attempts = await deliver(event, { url, timeoutMs: 200, backoff: { initialMs: 10, maxMs: 40 } });
  assert.equal(attempts, 4);
  assert.equal(requests, 4);
});
