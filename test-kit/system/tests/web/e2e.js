// The web client in headless Chromium: sign up, sell, see it listed, buy it, cancel, sign out.
// Usage: node e2e.js <base URL>   (NODE_PATH must reach playwright-core; CHROMIUM the browser)
"use strict";
const assert = require("node:assert/strict");
const { chromium } = require("playwright-core");

const base = process.argv[2];
const text = async (page, selector) => (await page.textContent(selector)).replace(/\s+/g, " ").trim();

// Every Content-Security-Policy violation any page reports; the run fails on one.
const violations = [];

async function signUp(browser, email) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (error) => { throw error; });
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) violations.push(message.text());
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      console.error(`Content Security Policy violation: ${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  await page.goto(`${base}/#/signup`);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", "password123");
  await page.click("button");
  await page.waitForURL(/#\/$/);
  await page.waitForFunction(() => document.querySelector("#nav").textContent.includes("Sign out"));
  return page;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const seller = await signUp(browser, "seller@e2e.test");
    const page = await seller.request.get(`${base}/`);
    const policy = page.headers()["content-security-policy"] || "";
    assert.match(policy, /script-src 'self'/, `the page's policy: ${policy}`);
    assert.doesNotMatch(policy, /unsafe-inline/, `the page's policy: ${policy}`);
    await seller.goto(`${base}/#/tickets/new`);
    await seller.fill("input[name=title]", "E2E concert");
    await seller.fill("input[name=price]", "abc");
    await seller.click("button");
    await seller.waitForSelector(".errors");
    assert.equal(await text(seller, ".errors"), "Price must be greater than 0");
    await seller.fill("input[name=price]", "19.99");
    await seller.click("button");
    await seller.waitForURL(/#\/$/);
    await seller.waitForSelector("table");
    assert.match(await text(seller, "table tbody"), /E2E concert\s*19\.99/);

    const buyer = await signUp(browser, "buyer@e2e.test");
    await buyer.waitForSelector("table a");
    await buyer.click("table a");
    await buyer.waitForSelector("#buy");
    await buyer.click("#buy");
    await buyer.waitForURL(/#\/orders\//);
    // The ticket's card stays on screen until the order page has rendered: wait for the order's.
    await buyer.waitForFunction(() => document.querySelector(".card")?.textContent.includes("Status:"));
    assert.match(await text(buyer, ".card"), /Status: created/);
    await buyer.click("#cancel");
    await buyer.waitForFunction(() => document.querySelector(".card").textContent.includes("cancelled"));
    await buyer.goto(`${base}/#/orders`);
    await buyer.waitForSelector("table");
    assert.match(await text(buyer, "table tbody"), /E2E concert\s*cancelled/);
    // A second ticket, paid for: a declined card first, then tok_visa; My orders shows it complete.
    await seller.goto(`${base}/#/tickets/new`);
    await seller.fill("input[name=title]", "E2E theatre");
    await seller.fill("input[name=price]", "25");
    await seller.click("button");
    await seller.waitForURL(/#\/$/);
    await buyer.goto(`${base}/#/`);
    await buyer.waitForSelector("tr:has-text('E2E theatre') a");
    await buyer.click("tr:has-text('E2E theatre') a");
    await buyer.waitForSelector("#buy");
    await buyer.click("#buy");
    await buyer.waitForURL(/#\/orders\//);
    await buyer.waitForSelector("#pay");
    // The form is made from what the API says of the provider: the fake and its test tokens.
    assert.match(await text(buyer, "#token-label"), /fake provider: tok_visa, tok_chargeDeclined/);
    assert.equal(await buyer.inputValue("input[name=token]"), "tok_visa");
    await buyer.fill("input[name=token]", "tok_chargeDeclined");
    await buyer.click("#pay-button");
    await buyer.waitForSelector(".errors");
    assert.equal(await text(buyer, ".errors"), "Your card was declined.");
    await buyer.fill("input[name=token]", "tok_visa");
    await buyer.click("#pay-button");
    await buyer.waitForURL(/#\/orders$/);
    await buyer.waitForFunction(() => document.querySelector("table tbody")?.textContent.includes("E2E theatre"));
    for (let i = 0; i < 100; i++) {
      if (/E2E theatre\s*complete/.test(await text(buyer, "table tbody"))) break;
      // The order becomes complete once payment:created reaches the orders service.
      await new Promise((resolve) => setTimeout(resolve, 100));
      await buyer.reload();
      await buyer.waitForSelector("table");
    }
    assert.match(await text(buyer, "table tbody"), /E2E theatre\s*complete/);
    await buyer.goto(`${base}/#/signout`);
    await buyer.waitForFunction(() => document.querySelector("#nav").textContent.includes("Sign in"));
    assert.deepEqual(violations, [], "Content-Security-Policy violations");
    console.log("web client: sign up, sell, list, buy, cancel, pay, sign out, no CSP violation: ok");
  } finally {
    await browser.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
