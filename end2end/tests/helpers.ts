import type { Page } from "@playwright/test";

// What the specs share: the admin start-server.sh creates, where screenshots go, and guards.

export const ADMIN = { email: "admin@example.com", password: "e2e-password-123" };
export const SHOTS = "test-results/screenshots";

/** A unique marker so tests sharing one server find their own conversation. */
export function tag(label: string): string {
  return `${label} ${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** Fails the test on any alert/confirm/prompt (the XSS canary) and on uncaught page errors. */
export function guard(page: Page, problems: string[]) {
  page.on("dialog", async (d) => {
    problems.push(`${d.type()}: ${d.message()}`);
    await d.dismiss();
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
}
