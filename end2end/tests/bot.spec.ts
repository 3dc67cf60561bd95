import { expect, test, type Browser, type FrameLocator, type Page } from "@playwright/test";
import { ADMIN, SHOTS, guard, tag } from "./helpers";

// The bot (start-server.sh adds the site "Tea & Co. bot" with the bot on, the ecommerce and
// general packs and the welcome "Hi! I'm the shop assistant. Ask me anything."; /demo?site=<key>
// embeds it): it answers first, hands over to people, and admins tune it on /console/bot.
// No sleeps: every step waits for what a user sees.

const BOT_SITE = "Tea & Co. bot";
const WELCOME = "Hi! I'm the shop assistant";
// corpus/ecommerce/en.json, ecommerce.delivery-time: its first question, word for word.
const QUESTION = "How long does delivery take?";
const ANSWER = /standard delivery takes/;

/** The site_key of the site with the bot, asked of the API as the admin. */
async function botSiteKey(browser: Browser): Promise<string> {
  const ctx = await browser.newContext();
  const login = await ctx.request.post("/api/v1/auth/login", { data: ADMIN });
  expect(login.ok()).toBeTruthy();
  const res = await ctx.request.get("/api/v1/sites");
  expect(res.ok()).toBeTruthy();
  const { sites } = (await res.json()) as { sites: { name: string; site_key: string }[] };
  await ctx.close();
  const site = sites.find((s) => s.name === BOT_SITE);
  expect(site, `a site named ${BOT_SITE}`).toBeTruthy();
  return site!.site_key;
}

async function openWidget(page: Page, siteKey: string): Promise<FrameLocator> {
  await page.goto(`/demo?site=${encodeURIComponent(siteKey)}`);
  await page.locator("#kefu-launcher").click();
  await expect(page.locator("#kefu-frame")).toBeVisible();
  const frame = page.frameLocator("#kefu-frame");
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
}

/** The visitor's conversation id, as the widget keeps it (the frame shares the demo's origin). */
async function conversationId(page: Page): Promise<string> {
  let id = "";
  await expect
    .poll(async () => {
      id = await page.evaluate(() => {
        for (let i = 0; i < localStorage.length; i++) {
          const key = localStorage.key(i) ?? "";
          if (key.endsWith(":conversation")) return localStorage.getItem(key) ?? "";
        }
        return "";
      });
      return id;
    })
    .not.toBe("");
  return id;
}

async function login(page: Page) {
  await page.goto("/console");
  await page.getByTestId("login-email").fill(ADMIN.email);
  await page.getByTestId("login-password").fill(ADMIN.password);
  await page.getByTestId("login-submit").click();
  await expect(page.getByTestId("conversation-list")).toBeVisible();
}

// First, while no agent is signed in: a hand-over then offers the contact form.
test("with nobody online, the hand-over offers a contact form", async ({ browser }) => {
  const ctx = await browser.newContext();
  const visitor = await ctx.newPage();
  const problems: string[] = [];
  guard(visitor, problems);

  const frame = await openWidget(visitor, await botSiteKey(browser));
  await visitorSends(frame, QUESTION);
  await expect(frame.locator('[data-sender="bot"]').filter({ hasText: ANSWER })).toBeVisible();

  await frame.getByTestId("handoff").click();
  await expect(frame.locator('[data-sender="system"]').first()).toBeVisible();
  await expect(frame.getByTestId("handoff")).toHaveCount(0);

  const form = frame.getByTestId("contact-form");
  await expect(form).toBeVisible();
  // A name alone is not enough: an email or a phone is needed.
  await form.getByTestId("contact-name").fill("Ann Visitor");
  await frame.getByTestId("contact-submit").click();
  await expect(frame.getByTestId("contact-error")).toBeVisible();
  await frame.getByTestId("contact-email").fill("ann@shop.example");
  await frame.getByTestId("contact-submit").click();
  await expect(frame.getByTestId("contact-thanks")).toBeVisible();
  await expect(frame.getByTestId("contact-form")).toHaveCount(0);

  expect(problems).toEqual([]);
  await ctx.close();
});

test("the bot answers first, then hands the visitor to an agent with the transcript", async ({ browser }) => {
  const visitorCtx = await browser.newContext();
  const agentCtx = await browser.newContext();
  const visitor = await visitorCtx.newPage();
  const agent = await agentCtx.newPage();
  const problems: string[] = [];
  guard(visitor, problems);
  guard(agent, problems);

  // The agent is at work (online), so the hand-over connects rather than offering a form.
  await login(agent);

  const frame = await openWidget(visitor, await botSiteKey(browser));
  await expect(frame.getByTestId("handoff")).toHaveCount(0);
  await visitorSends(frame, QUESTION);

  // The welcome, then the answer, both from the bot, labelled as such.
  const bot = frame.locator('[data-testid="message"][data-sender="bot"]');
  await expect(bot.filter({ hasText: WELCOME })).toHaveCount(1);
  const answer = bot.filter({ hasText: ANSWER });
  await expect(answer).toBeVisible();
  await expect(answer.getByTestId("bot-label")).toBeVisible();
  await expect(frame.getByTestId("quick-reply").first()).toBeVisible();
  await expect(frame.getByTestId("handoff")).toBeVisible();
  await visitor.screenshot({ path: `${SHOTS}/widget-bot.png` });

  // Meanwhile the console lists the conversation as the bot's.
  const id = await conversationId(visitor);
  const item = agent.locator(`[data-testid="conversation-item"][data-conversation-id="${id}"]`);
  await expect(item).toBeVisible();
  await expect(item.getByTestId("bot-badge")).toBeVisible();

  // "Talk to a person": a system note, the button goes, and the conversation is the agents'.
  await frame.getByTestId("handoff").click();
  await expect(frame.locator('[data-testid="message"][data-sender="system"]').first()).toBeVisible();
  await expect(frame.getByTestId("handoff")).toHaveCount(0);
  await expect(item.getByTestId("bot-badge")).toHaveCount(0);
  await expect(item).toHaveAttribute("data-status", "open");

  // The agent sees the whole transcript, the bot's part labelled.
  await item.click();
  await expect(item).toHaveAttribute("aria-current", "true");
  const log = agent.getByTestId("message-list");
  await expect(log.locator('[data-sender="bot"]').filter({ hasText: ANSWER })).toBeVisible();
  await expect(log.locator('[data-sender="bot"]').filter({ hasText: WELCOME })).toBeVisible();
  await expect(log.locator('[data-sender="bot"]').first().getByTestId("bot-label")).toBeVisible();
  await expect(log.locator('[data-sender="visitor"]').filter({ hasText: QUESTION })).toBeVisible();
  await expect(log.locator('[data-sender="system"]').first()).toBeVisible();

  const reply = tag("An agent here, happy to help");
  await agent.getByTestId("reply").fill(reply);
  await agent.getByTestId("reply").press("Enter");
  await expect(log.getByTestId("message").filter({ hasText: reply }).getByTestId("status-sent")).toBeVisible();
  const got = frame.getByTestId("message").filter({ hasText: reply });
  await expect(got).toHaveAttribute("data-sender", "agent");

  expect(problems).toEqual([]);
  await visitorCtx.close();
  await agentCtx.close();
});

test("an admin tries the bot and adds a QA pair on the bot page", async ({ page }) => {
  const problems: string[] = [];
  guard(page, problems);
  await login(page);

  await page.getByTestId("bot-admin-link").click();
  await expect(page).toHaveURL(/\/console\/bot$/);
  const admin = page.getByTestId("bot-admin");
  await expect(admin).toBeVisible();
  await page.getByTestId("bot-site").selectOption({ label: BOT_SITE });

  // The demo site's settings, as start-server.sh made them.
  await expect(page.getByTestId("bot-enabled")).toBeChecked();
  await expect(page.getByTestId("bot-welcome")).toHaveValue(/shop assistant/);
  await expect(page.getByTestId("bot-threshold")).toHaveValue(/^[01](\.\d+)?$/);

  // Try it: the intent and the confidence show as one types.
  await page.getByTestId("bot-try-input").fill(QUESTION);
  await expect(page.getByTestId("bot-try-intent")).toHaveText("ecommerce.delivery-time");
  await expect(page.getByTestId("bot-try-confidence")).toHaveText(/^(0|1)\.\d\d$/);
  await expect(page.getByTestId("bot-try-answer")).toHaveText(ANSWER);
  await page.screenshot({ path: `${SHOTS}/console-bot-admin.png` });

  // Saving unchanged settings round-trips them.
  await page.getByTestId("bot-save").click();
  await expect(page.getByTestId("bot-saved")).toBeVisible();
  await expect(page.getByTestId("bot-enabled")).toBeChecked();

  // Pack pairs are searchable (and read-only).
  await page.getByTestId("qa-search").fill("delivery");
  const packItem = page.locator('[data-testid="qa-item"][data-source^="pack:"]').first();
  await expect(packItem).toBeVisible();
  await expect(packItem.getByTestId("qa-edit")).toHaveCount(0);

  // A new pair of the site's own, found by search; markup stays text.
  const word = tag("zebrafruit");
  const question = `Do you sell ${word}?`;
  await page.getByTestId("qa-add").click();
  await page.getByTestId("qa-questions").fill(`${question}\nIs ${word} in stock?`);
  await page.getByTestId("qa-answer").fill(`Yes, <b>${word}</b> ships in 2 days.`);
  await page.getByTestId("qa-save").click();
  await expect(page.getByTestId("qa-form")).toHaveCount(0);
  await page.getByTestId("qa-search").fill(word);
  const mine = page.getByTestId("qa-item").filter({ hasText: question });
  await expect(mine).toHaveCount(1);
  await expect(mine).toHaveAttribute("data-source", "site");
  await expect(mine.getByTestId("qa-item-answer")).toHaveText(`Yes, <b>${word}</b> ships in 2 days.`);
  await expect(admin.locator("b")).toHaveCount(0);

  // An example of what the shop does not answer: it needs no answer, shows as such in the
  // list, and the bot declines a question like it (which its own pair answered before).
  const wholesale = `can I buy ${word} wholesale by the tonne`;
  await page.getByTestId("bot-try-input").fill(wholesale);
  await expect(page.getByTestId("bot-try-intent")).toHaveText(/^site\./);
  await page.getByTestId("qa-add").click();
  await page.getByTestId("qa-decline").check();
  await expect(page.getByTestId("qa-answer")).toBeHidden();
  await page.getByTestId("qa-questions").fill(`Do you sell ${word} wholesale by the tonne?`);
  await page.screenshot({ path: `${SHOTS}/console-bot-decline.png` });
  await page.getByTestId("qa-save").click();
  await expect(page.getByTestId("qa-form")).toHaveCount(0);
  const declined = page.getByTestId("qa-item").filter({ hasText: "wholesale" });
  await expect(declined.getByTestId("qa-declines")).toBeVisible();
  await expect(mine.getByTestId("qa-declines")).toHaveCount(0);
  await page.getByTestId("bot-try-input").fill(`${wholesale}?`);
  await expect(page.getByTestId("bot-try-intent")).toHaveText("unknown");
  await expect(page.getByTestId("bot-try-declined")).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/console-bot-declined.png` });

  // Back to the inbox without a reload.
  await page.getByTestId("inbox-link").click();
  await expect(page).toHaveURL(/\/console$/);
  await expect(page.getByTestId("conversation-list")).toBeVisible();
  await expect(page.getByTestId("bot-admin")).toHaveCount(0);

  expect(problems).toEqual([]);
});
