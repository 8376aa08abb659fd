// What the storefront's tests share: a shop of its own per test (a fresh
// database made by shop.sql on the server of the PG* variables, as its
// owner), the real server started as a child process against it, and
// Debian's Chromium driven by playwright-core.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { chromium, type Browser, type Page } from "playwright-core";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const env = process.env;

/** A connection string to `db` as the owner (the PG* variables) or as the app role */
export function url(db: string, as: "owner" | "app" = "owner", port = env.PGPORT ?? "5432"): string {
  const host = env.PGHOST && !env.PGHOST.startsWith("/") ? env.PGHOST : "localhost";
  const user = as === "app" ? "storefront:storefront" : `${encodeURIComponent(env.PGUSER ?? "postgres")}:${encodeURIComponent(env.PGPASSWORD ?? "")}`;
  return `postgresql://${user}@${host}:${port}/${db}`;
}

/** A new database `db` holding the demo shop, the hot product with `stock` units */
export function createShop(db: string, stock = 20): pg.Pool {
  const psql = (args: string[]) => {
    const r = spawnSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", ...args], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`psql ${args.join(" ")}: ${r.stderr}`);
  };
  psql(["-d", "postgres", "-c", `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`, "-c", `CREATE DATABASE "${db}"`]);
  psql(["-d", db, "-v", `stock=${stock}`, "-f", join(ROOT, "shop.sql")]);
  return ownerPool(db);
}

/** A small pool of owner connections to `db` */
export function ownerPool(db: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url(db), max: 4 });
  pool.on("error", () => {});
  return pool;
}

export type Shop = {
  url: string;
  process: ChildProcess;
  log: string[];
  health(): Promise<any>;
  stop(): Promise<void>;
};

/**
 * The storefront server on a free port, for database `db`: dist/src/main.js,
 * or `entry` (another build, as make load runs the old one beside it), with
 * `nodeArgs` (--cpu-prof)
 */
export async function startServer(
  db: string,
  extra: Record<string, string> = {},
  { entry = join(ROOT, "dist", "src", "main.js"), nodeArgs = [] as string[] } = {},
): Promise<Shop> {
  const child = spawn(process.execPath, [...nodeArgs, entry], {
    env: {
      ...env,
      PORT: "0",
      DATABASE_URL: url(db, "app"),
      NOTIFIER_DATABASE_URL: url(db),
      ...extra,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log: string[] = [];
  child.stderr!.on("data", (d) => log.push(String(d)));
  const address = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += String(d);
      const m = /storefront: (http:\/\/\S+?)\/?\n/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`storefront exited (${code}): ${log.join("")}`)));
  });
  return {
    url: address,
    process: child,
    log,
    health: () => fetch(`${address}/api/health`).then((r) => r.json()),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.on("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-renderer-backgrounding",
      "--disable-background-timer-throttling",
      "--disable-backgrounding-occluded-windows",
    ],
  });
}

/**
 * Console errors and uncaught exceptions of every page watched.  The
 * browser's own line for an HTTP answer the page handles (409 sold out,
 * 503 retry) is not a page error and is left out; anything else counts.
 */
export const consoleErrors: string[] = [];
export function watch(page: Page, name: string): Page {
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (/^Failed to load resource: the server responded with a status of (409|503|422|400)/.test(m.text())) return;
    consoleErrors.push(`${name}: ${m.text()}`);
  });
  page.on("pageerror", (e) => consoleErrors.push(`${name}: ${e.message}`));
  return page;
}

/** Click the buy button of product `id` on every page at the instant `at` (ms since the epoch) */
export async function clickAllAt(pages: Page[], id: number, at: number): Promise<void> {
  await Promise.all(
    pages.map((page) =>
      page.evaluate(
        ({ id, at }) =>
          new Promise<void>((resolve) =>
            setTimeout(() => {
              (document.querySelector(`#product-${id} button.buy`) as HTMLButtonElement).click();
              resolve();
            }, at - Date.now()),
          ),
        { id, at },
      ),
    ),
  );
}

/** The outcome shown for product `id`, once it is final (an order, or an error) */
export async function finalOutcome(page: Page, id: number, timeout = 60000): Promise<string> {
  await page.waitForFunction(
    (id) => {
      const o = document.getElementById(`outcome-${id}`)!;
      return o.classList.contains("ok") || o.classList.contains("error");
    },
    id,
    { timeout },
  );
  return (await page.textContent(`#outcome-${id}`)) ?? "";
}

export const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

export async function one(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<any> {
  const { rows } = await pool.query(sql, params);
  return rows[0];
}
