import { gzipSync } from "node:zlib";
import { expect, test, type Response } from "@playwright/test";

// The performance budget of the widget: what a visitor's browser downloads from Kefu for the chat
// (the loader, then everything the chat frame loads until it is interactive) must stay under
// 250,000 bytes gzipped. The agent console's code must not be part of it.

const BUDGET = 250_000;

interface Row {
  url: string;
  status: number;
  encoding: string;
  /** Bytes of the body on the wire, as the server sent it (with its Content-Encoding). */
  wire: number;
  /** Bytes of the decoded body. */
  raw: number;
  /** The decoded body compressed with gzip -9, the figure the budget is stated in. */
  gzip9: number;
}

async function measure(response: Response): Promise<Row> {
  const body = await response.body().catch(() => Buffer.alloc(0));
  const sizes = await response.request().sizes();
  return {
    url: new URL(response.url()).pathname,
    status: response.status(),
    encoding: (await response.headerValue("content-encoding")) ?? "identity",
    wire: sizes.responseBodySize,
    raw: body.length,
    gzip9: body.length ? gzipSync(body, { level: 9 }).length : 0,
  };
}

test("the widget's first open downloads less than 250,000 bytes gzipped", async ({ browser }) => {
  // Ask for gzip only, so the wire figure is the gzipped one (Chromium would prefer Brotli).
  const ctx = await browser.newContext({ extraHTTPHeaders: { "Accept-Encoding": "gzip" } });
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));

  const pending: Promise<Row>[] = [];
  page.on("response", (response) => {
    // Everything the chat iframe requests (its document included), and the loader script.
    const fromFrame = response.frame() !== page.mainFrame();
    const loader = new URL(response.url()).pathname === "/widget.js";
    if (fromFrame || loader) pending.push(measure(response));
  });

  await page.goto("/demo");
  await page.locator("#kefu-launcher").click();
  const frame = page.frameLocator("#kefu-frame");
  await expect(frame.locator('[data-testid="chat-root"][data-hydrated="true"]')).toBeVisible();
  // The session request is part of the first open: wait until the chat shows the site.
  await expect(frame.getByTestId("site-name")).not.toBeEmpty();

  const rows = await Promise.all(pending);
  const total = (k: "wire" | "raw" | "gzip9") => rows.reduce((n, r) => n + r[k], 0);
  const lines = rows.map(
    (r) =>
      `  ${String(r.status).padEnd(4)} ${r.encoding.padEnd(8)} wire ${String(r.wire).padStart(8)}  ` +
      `raw ${String(r.raw).padStart(8)}  gzip-9 ${String(r.gzip9).padStart(8)}  ${r.url}`,
  );
  console.log(
    [
      "widget first open:",
      ...lines,
      `  total: ${total("wire")} bytes on the wire, ${total("raw")} raw, ` +
        `${total("gzip9")} gzip -9 (budget ${BUDGET})`,
    ].join("\n"),
  );

  // The console lives in its own wasm chunk that the widget never fetches.
  const wasm = rows.filter((r) => r.url.endsWith(".wasm"));
  expect(wasm.length, "the widget loads one wasm file").toBe(1);
  expect(rows.every((r) => r.status < 400), "every request succeeded").toBe(true);
  for (const r of rows.filter((r) => /\.(wasm|js|css)$/.test(r.url))) {
    expect(r.encoding, `${r.url} is served compressed`).toBe("gzip");
  }
  expect(total("wire"), "bytes on the wire").toBeLessThanOrEqual(BUDGET);
  expect(total("gzip9"), "gzip -9 of everything loaded").toBeLessThanOrEqual(BUDGET);
  expect(errors).toEqual([]);
  await ctx.close();
});
