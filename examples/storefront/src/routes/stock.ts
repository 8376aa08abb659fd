// GET /api/products: every product with its stock on sale, from the stock
// hub (never the ledger).  GET /api/stock/events: Server-Sent Events,
// `snapshot` on connect, then sold_out, back_in_stock, stock (the "only N
// left" count changed) and product (a new one).
import type { ServerResponse } from "node:http";
import type { FastifyPluginAsync } from "fastify";

const stock: FastifyPluginAsync = async (app) => {
  const streams = new Set<ServerResponse>();
  app.addHook("preClose", async () => {
    for (const res of streams) res.end();
  });

  app.get("/api/products", async () => ({ products: app.hub.snapshot() }));

  app.get("/api/stock/events", (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write("retry: 1000\n\n");
    const unsubscribe = app.hub.subscribe((event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
    const ping = setInterval(() => res.write(": ping\n\n"), 15000);
    streams.add(res);
    req.raw.on("close", () => {
      clearInterval(ping);
      unsubscribe();
      streams.delete(res);
    });
  });
};

export default stock;
