// GET /: the page, rendered with the stock of now (a sold-out product's
// button is disabled in the first paint, before any script runs), for the
// shopper of the cookie or a new one; and its three static files.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyPluginAsync } from "fastify";
import { renderPage } from "../page.js";

const PUBLIC = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "public");
const ASSETS: Record<string, string> = {
  "/app.js": "text/javascript; charset=utf-8",
  "/stock-worker.js": "text/javascript; charset=utf-8",
  "/style.css": "text/css; charset=utf-8",
};

const page: FastifyPluginAsync = async (app) => {
  app.get("/", async (req, reply) => {
    let customerId = app.sessions.customerOf(req.headers.cookie);
    if (customerId === null) {
      customerId = await app.shop.newCustomer();
      reply.header("set-cookie", app.sessions.cookie(customerId));
    }
    reply.header("cache-control", "no-store");
    return reply.type("text/html; charset=utf-8").send(renderPage(app.hub.snapshot(), customerId, app.hub.lowStock));
  });

  for (const [path, type] of Object.entries(ASSETS)) {
    const body = readFileSync(join(PUBLIC, path.slice(1)), "utf8");
    app.get(path, async (_req, reply) => reply.type(type).header("cache-control", "no-cache").send(body));
  }
};

export default page;
