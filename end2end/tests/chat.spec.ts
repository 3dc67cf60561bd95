import { expect, test, type Browser, type BrowserContext, type FrameLocator, type Page } from "@playwright/test";
import { ADMIN, SHOTS, guard, tag } from "./helpers";

// A visitor on the demo shop (/demo, which embeds /widget.js) and an agent in /console, each in
// their own browser context. No sleeps: every step waits for what the user would see.

async function openWidget(page: Page): Promise<FrameLocator> {
  await page.goto("/demo");
  const launcher = page.locator("#kefu-launcher");
  await expect(launcher).toBeVisible();
  await launcher.click();
  await expect(page.locator("#kefu-frame")).toBeVisible();
  const frame = page.frameLocator("#kefu-frame");
  // The chat is interactive once hydrated (the server sends the same markup, inert).
  await expect(frame.locator('[data-testid="chat-root"][data-hydrated="true"]')).toBeVisible();
  return frame;
}

async function visitorSends(frame: FrameLocator, text: string) {
  const composer = frame.getByTestId("composer");
  await composer.fill(text);
  await expect(frame.getByTestId("send")).toBeEnabled();
  await composer.press("Enter");
  await expect(composer).toHaveValue("");
  const mine = frame.getByTestId("message").filter({ hasText: text }).last();
  await expect(mine).toHaveAttribute("data-sender", "visitor");
  await expect(mine.getByTestId("status-sent")).toBeVisible();
}

async function login(page: Page) {
  await page.goto("/console");
  await page.getByTestId("login-email").fill(ADMIN.email);
  await page.getByTestId("login-password").fill(ADMIN.password);
  await page.getByTestId("login-submit").click();
  await expect(page.getByTestId("conversation-list")).toBeVisible();
}

/** Opens the conversation whose list preview contains `text`. */
async function openConversation(agent: Page, text: string) {
  const item = agent.getByTestId("conversation-item").filter({ hasText: text });
  await expect(item).toHaveCount(1);
  await item.click();
  await expect(item).toHaveAttribute("aria-current", "true");
  await expect(
    agent.getByTestId("message-list").getByTestId("message-body").filter({ hasText: text }),
  ).toHaveCount(1);
}

async function agentReplies(agent: Page, text: string) {
  const reply = agent.getByTestId("reply");
  await reply.fill(text);
  await reply.press("Enter");
  const mine = agent.getByTestId("message-list").getByTestId("message").filter({ hasText: text });
  await expect(mine.getByTestId("status-sent")).toBeVisible();
}

async function contexts(browser: Browser): Promise<[BrowserContext, BrowserContext]> {
  return [await browser.newContext(), await browser.newContext()];
}

test("a visitor and an agent chat live, and the badge counts replies while the chat is closed", async ({
  browser,
}) => {
  const [visitorCtx, agentCtx] = await contexts(browser);
  const dialogs: string[] = [];
  const agent = await agentCtx.newPage();
  const visitor = await visitorCtx.newPage();
  guard(agent, dialogs);
  guard(visitor, dialogs);

  // The agent is already at work when the visitor writes.
  await login(agent);

  const frame = await openWidget(visitor);
  await expect(frame.getByTestId("greeting")).toBeVisible();
  await visitorSends(frame, "Hello from the shop");
  await visitor.screenshot({ path: `${SHOTS}/widget-desktop.png` });

  // The conversation appears in the list without a reload.
  const item = agent.getByTestId("conversation-item").filter({ hasText: "Hello from the shop" });
  await expect(item).toBeVisible();
  await openConversation(agent, "Hello from the shop");
  await expect(item.getByTestId("unread-badge")).toHaveCount(0);

  const panel = agent.getByTestId("visitor-panel");
  await expect(panel.getByTestId("visitor-page")).toContainText("/demo");
  await expect(panel.getByTestId("visitor-browser")).toContainText(/Chrom/);

  await agentReplies(agent, "Hi, how can I help?");
  const reply = frame.getByTestId("message").filter({ hasText: "Hi, how can I help?" });
  await expect(reply).toHaveAttribute("data-sender", "agent");
  await agent.screenshot({ path: `${SHOTS}/console-conversation.png` });

  // Closed chat: the next reply lights up the launcher badge.
  await frame.getByTestId("close").click();
  await expect(visitor.locator("#kefu-frame")).toBeHidden();
  await expect(visitor.locator("#kefu-badge")).toBeHidden();
  await agentReplies(agent, "Are you still there?");
  await expect(visitor.locator("#kefu-badge")).toHaveText("1");
  await expect(visitor.locator("#kefu-badge")).toBeVisible();

  // Opening the chat clears it and shows the reply.
  await visitor.locator("#kefu-launcher").click();
  await expect(frame.getByTestId("message").filter({ hasText: "Are you still there?" })).toBeVisible();
  await expect(visitor.locator("#kefu-badge")).toBeHidden();

  expect(dialogs).toEqual([]);
  await visitorCtx.close();
  await agentCtx.close();
});

test("message bodies are text: markup a visitor types never runs in the console", async ({ browser }) => {
  const [visitorCtx, agentCtx] = await contexts(browser);
  const dialogs: string[] = [];
  const visitor = await visitorCtx.newPage();
  const agent = await agentCtx.newPage();
  guard(visitor, dialogs);
  guard(agent, dialogs);

  const payload = `<img src=x onerror=alert(1)> ${tag("xss")}`;
  const frame = await openWidget(visitor);
  await visitorSends(frame, payload);
  await expect(frame.getByTestId("message-list").locator("img")).toHaveCount(0);

  await login(agent);
  await openConversation(agent, payload);
  const body = agent.getByTestId("message-list").getByTestId("message-body").filter({ hasText: payload });
  await expect(body).toHaveText(payload);
  await expect(agent.getByTestId("message-list").locator("img")).toHaveCount(0);
  await expect(agent.getByTestId("conversation-list").locator("img")).toHaveCount(0);

  // A reply with markup comes back to the visitor as text too.
  const back = `<script>alert(2)</script><b>bold?</b> ${tag("xss-back")}`;
  await agentReplies(agent, back);
  await expect(frame.getByTestId("message-body").filter({ hasText: back })).toHaveText(back);
  await expect(frame.getByTestId("message-list").locator("script, b, img")).toHaveCount(0);

  expect(dialogs).toEqual([]);
  await visitorCtx.close();
  await agentCtx.close();
});

test("on a phone the chat opens full screen and sends", async ({ browser }) => {
  const ctx = await browser.newContext({
    viewport: { width: 375, height: 667 },
    isMobile: true,
    hasTouch: true,
  });
  const dialogs: string[] = [];
  const page = await ctx.newPage();
  guard(page, dialogs);

  await page.goto("/demo");
  const launcher = page.locator("#kefu-launcher");
  await expect(launcher).toBeVisible();
  const box = await launcher.boundingBox();
  expect(box).not.toBeNull();
  expect(box!.x + box!.width).toBeLessThanOrEqual(375);
  expect(box!.y + box!.height).toBeLessThanOrEqual(667);

  await launcher.tap();
  const frameEl = page.locator("#kefu-frame");
  await expect(frameEl).toBeVisible();
  const fbox = await frameEl.boundingBox();
  expect(fbox).not.toBeNull();
  expect(Math.round(fbox!.width)).toBe(375);
  expect(Math.round(fbox!.height)).toBe(667);

  const frame = page.frameLocator("#kefu-frame");
  await expect(frame.locator('[data-testid="chat-root"][data-hydrated="true"]')).toBeVisible();
  const text = tag("From my phone");
  await visitorSends(frame, text);
  await page.screenshot({ path: `${SHOTS}/widget-phone.png` });

  // The frame's close button brings the launcher back.
  await frame.getByTestId("close").tap();
  await expect(frameEl).toBeHidden();
  await expect(launcher).toBeVisible();

  expect(dialogs).toEqual([]);
  await ctx.close();
});

test("without WebSockets the widget falls back to long-polling", async ({ browser }) => {
  const [visitorCtx, agentCtx] = await contexts(browser);
  // A proxy that refuses every WebSocket.
  await visitorCtx.routeWebSocket(/\/ws\//, (ws) => ws.close());
  const dialogs: string[] = [];
  const visitor = await visitorCtx.newPage();
  const agent = await agentCtx.newPage();
  guard(visitor, dialogs);
  guard(agent, dialogs);

  const frame = await openWidget(visitor);
  await expect(frame.getByTestId("chat-root")).toHaveAttribute("data-transport", "long-polling");
  const text = tag("Sent over long-polling");
  await visitorSends(frame, text);

  await login(agent);
  await openConversation(agent, text);
  const answer = tag("Answered over long-polling");
  await agentReplies(agent, answer);
  await expect(frame.getByTestId("message").filter({ hasText: answer })).toHaveAttribute(
    "data-sender",
    "agent",
  );
  await expect(frame.getByTestId("chat-root")).toHaveAttribute("data-transport", "long-polling");

  expect(dialogs).toEqual([]);
  await visitorCtx.close();
  await agentCtx.close();
});

test("after a reload the visitor sees the whole history once, in order", async ({ browser }) => {
  const ctx = await browser.newContext();
  const dialogs: string[] = [];
  const page = await ctx.newPage();
  guard(page, dialogs);

  const first = tag("First message");
  const second = tag("Second message");
  let frame = await openWidget(page);
  await visitorSends(frame, first);
  await visitorSends(frame, second);

  await page.reload();
  frame = await openWidget(page);
  const bodies = frame.getByTestId("message-body");
  await expect(bodies.filter({ hasText: first })).toHaveCount(1);
  await expect(bodies.filter({ hasText: second })).toHaveCount(1);
  const texts = await bodies.allTextContents();
  const ours = texts.filter((t) => t === first || t === second);
  expect(ours).toEqual([first, second]);

  expect(dialogs).toEqual([]);
  await ctx.close();
});
