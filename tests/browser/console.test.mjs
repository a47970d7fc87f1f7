// End-to-end tests of the web console and self-service in a real (headless) Chromium.
//
// Starts the provisor binary (PROVISOR_BIN, default target/debug/provisor) on a fresh data
// directory with the embedded SQLite, drives Debian's Chromium (CHROMIUM, default
// /usr/bin/chromium) with playwright-core, and saves screenshots of the main pages to
// ARTIFACTS (default tests/browser/artifacts). Run by scripts/test; alone:
//   cargo build -p provisor && (cd tests/browser && npm ci && node --test console.test.mjs)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const BIN = process.env.PROVISOR_BIN || join(process.env.CARGO_TARGET_DIR || join(root, "target"), "debug/provisor");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = process.env.ARTIFACTS || join(here, "artifacts");
const ADMIN_PASSWORD = "operator-password-1";
const DOMAIN = "acme.example.com";

let server, base, dataDir, browser, operatorToken;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function provisor(...args) {
  return execFileSync(BIN, ["--data-dir", dataDir, ...args], { encoding: "utf8" });
}

async function api(method, path, body, token = operatorToken) {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function signIn(page, realm, login, password) {
  await page.goto(`${base}${realm}/signin`);
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
}

before(async () => {
  rmSync(ARTIFACTS, { recursive: true, force: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "provisor-browser-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const config = join(dataDir, "provisor.toml");
  // Phones without credentials get the provisioning-code prompt (HTTP auth).
  writeFileSync(config, 'phone_unauthenticated = "code-prompt"\n');
  writeFileSync(join(dataDir, "pw"), ADMIN_PASSWORD + "\n");
  provisor("admin", "add", "root", "--password-file", join(dataDir, "pw"));
  server = spawn(BIN, ["--config", config, "--data-dir", dataDir, "serve", "--listen", `127.0.0.1:${port}`], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stderr.on("data", (d) => process.stderr.write(d));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    if (i > 100) throw new Error("provisor did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  operatorToken = readFileSync(join(dataDir, "operator-token"), "utf8").trim();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

let code; // the user's provisioning code, from self-service

test("an admin creates a domain, a category and a user with a SIP account", async () => {
  const page = await (await browser.newContext({ viewport: { width: 1360, height: 860 } })).newPage();
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/console\/signin$/);
  await shot(page, "01-console-sign-in");
  await signIn(page, "/console", "root", "wrong-password");
  assert.match(await page.textContent(".alert"), /not right/);
  await signIn(page, "/console", "root", ADMIN_PASSWORD);
  assert.equal(new URL(page.url()).pathname, "/console");
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "provisor_console");
  assert.ok(session.httpOnly && session.sameSite === "Strict" && session.path === "/console");

  await page.fill('input[name="name"]', DOMAIN);
  await page.fill('input[name="description"]', "Acme Corporation, head office");
  await page.click('form[action="/console/domains"] button');
  assert.equal(new URL(page.url()).pathname, `/console/d/${DOMAIN}`);
  await page.fill('input[name="name"]', "Desk phones");
  await page.click(`form[action$="/categories"] button`);
  await page.fill('input[name="name"]', "Conference rooms");
  await page.click(`form[action$="/categories"] button`);
  assert.ok(await page.isVisible("text=Desk phones"));

  await page.click("nav.tabs >> text=Users");
  await page.fill('input[name="username"]', "alice");
  await page.fill('input[name="display_name"]', "Alice Liddell");
  await page.fill('input[name="email"]', "alice@acme.example.com");
  await page.fill('input[name="password"]', "alice-portal-pw");
  await page.click(`form[action$="/users"] button`);
  assert.match(page.url(), /\/users\/alice$/);
  await page.fill('input[name="sip_user"]', "201");
  await page.fill('input[name="password"]', "sip-secret-201");
  await page.fill('input[name="display_name"]', "Alice Liddell");
  await page.click(`form[action$="/accounts"] button`);
  await page.fill('input[name="sip_user"]', "202");
  await page.fill('input[name="password"]', "sip-secret-202");
  await page.fill('input[name="display_name"]', "Alice (sales)");
  await page.click(`form[action$="/accounts"] button`);
  assert.ok(await page.isVisible("td >> text=202"));
  await shot(page, "03-console-user");
  // A few more users, for the lists and the rollout.
  for (const [u, name, sip] of [["bob", "Bob Builder", "203"], ["carol", "Carol Danvers", "204"]]) {
    await api("POST", `/api/v1/domains/${DOMAIN}/users`, { username: u, display_name: name });
    await api("POST", `/api/v1/domains/${DOMAIN}/users/${u}/accounts`, { sip_user: sip, password: `sip-secret-${sip}` });
  }
  await page.click("nav.tabs >> text=Users");
  await shot(page, "02-console-users");
  await page.context().close();
});

test("the user signs in to self-service and gets a code", async () => {
  const page = await (await browser.newContext({ viewport: { width: 1200, height: 860 } })).newPage();
  await page.goto(`${base}/self`);
  assert.match(page.url(), /\/self\/signin$/);
  await signIn(page, "/self", `alice@${DOMAIN}`, "alice-portal-pw");
  assert.equal(new URL(page.url()).pathname, "/self");
  await shot(page, "06-self-service");
  await page.selectOption('select[name="category"]', "Desk phones");
  await page.click('form[action="/self/codes"] button');
  code = (await page.textContent("[data-code]")).trim();
  assert.match(code, /^\d{12}$/);
  // The countdown runs (script), over the expiry shown without it.
  await page.waitForFunction(() => /Expires in/.test(document.querySelector("[data-countdown]").textContent));
  await shot(page, "07-self-code");
  await page.context().close();
});

test("an emulated phone redeems the code and the console shows it registered", async () => {
  const ua = "Yealink SIP-T54W 96.86.0.100 00:15:65:aa:bb:01";
  // First fetch: the code prompt (HTTP auth).
  const prompt = await fetch(`${base}/p/001565aabb01.cfg`, { headers: { "user-agent": ua } });
  assert.equal(prompt.status, 401);
  assert.match(prompt.headers.get("www-authenticate"), /Basic realm="Provisioning code"/);
  // The user types the code as the password.
  const auth = "Basic " + Buffer.from(`phone:${code}`).toString("base64");
  const cfg = await fetch(`${base}/p/001565aabb01.cfg`, { headers: { "user-agent": ua, authorization: auth } });
  const body = await cfg.text();
  assert.equal(cfg.status, 200, body);
  assert.match(body, /^#!version:1\.0\.0\.1/);
  assert.match(body, /account\.1\.user_name = 201/);
  assert.match(body, /account\.2\.user_name = 202/);
  assert.match(body, /sip-secret-201/, "the phone itself gets its SIP password");

  const page = await (await browser.newContext({ viewport: { width: 1360, height: 860 } })).newPage();
  await signIn(page, "/console", "root", ADMIN_PASSWORD);
  await page.goto(`${base}/console/d/${DOMAIN}/devices`);
  const row = page.locator("tr", { hasText: "001565aabb01" });
  assert.match(await row.textContent(), /Provisioned/);
  assert.match(await row.textContent(), /alice/);
  await shot(page, "04-console-devices");
  await row.locator("a.mono").click();
  await page.click('a[href="?file=001565aabb01.cfg"]');
  const preview = await page.textContent("section.preview pre");
  assert.match(preview, /account\.1\.user_name = 201/);
  assert.ok(!preview.includes("sip-secret-201"), "the preview masks the SIP password");
  await shot(page, "05-console-device");
  await page.context().close();
});

test("a rollout hands out codes, tracks Pending → Registered and downloads as CSV", async () => {
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, acceptDownloads: true });
  const page = await context.newPage();
  await signIn(page, "/console", "root", ADMIN_PASSWORD);
  await page.goto(`${base}/console/d/${DOMAIN}/rollouts`);
  await page.selectOption('select[name="category"]', "Desk phones");
  await page.fill('input[name="phone"]', "Yealink T54W");
  await page.fill('textarea[name="users"]', "bob\ncarol");
  await page.click(`form[action$="/rollouts"] button`);
  assert.match(page.url(), /\/rollouts\/\d+$/);
  const bobRow = page.locator("tr", { hasText: "Bob Builder" });
  assert.match(await bobRow.textContent(), /Pending/);
  const bobCode = (await bobRow.locator("td.mono").textContent()).trim();
  // Bob's phone redeems his code.
  const r = await fetch(`${base}/p/activate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ code: bobCode, mac: "001565aabb02", model: "T54W" }),
  });
  assert.equal(r.status, 200, await r.text());
  await page.reload();
  assert.match(await page.locator("tr", { hasText: "Bob Builder" }).textContent(), /Registered/);
  assert.match(await page.locator("tr", { hasText: "Carol Danvers" }).textContent(), /Pending/);
  await shot(page, "08-console-rollout");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=Download CSV")]);
  const csv = readFileSync(await download.path(), "utf8");
  const rows = csv.trim().split("\r\n").map((l) => l.split(","));
  assert.deepEqual(rows[0], ["user", "display_name", "code", "valid_until", "state", "mac"]);
  const bob = rows.find((row) => row[0] === "bob");
  assert.deepEqual([bob[2], bob[4], bob[5]], [bobCode, "Registered", "001565aabb02"]);
  assert.equal(rows.find((row) => row[0] === "carol")[4], "Pending");
  // A firmware job for the domain's T54W phones, half of them first.
  await page.goto(`${base}/console/d/${DOMAIN}/jobs`);
  await page.selectOption('select[name="kind"]', "software");
  await page.fill('input[name="models"]', "T54W");
  await page.fill('input[name="url"]', "https://firmware.example.com/t54w-96.86.0.110.rom");
  await page.fill('input[name="version"]', "96.86.0.110");
  await page.fill('input[name="percent"]', "50");
  await page.click(`form[action$="/jobs"] button`);
  assert.match(await page.textContent("table"), /firmware 96\.86\.0\.110/);
  await shot(page, "11-console-jobs");
  await page.goto(`${base}/console/d/${DOMAIN}/audit`);
  await shot(page, "09-console-audit");
  await page.goto(`${base}/console`);
  await shot(page, "00-console-domains");
  await context.close();
});

test("a template is edited with a live preview and its problems at their line", async () => {
  const page = await (await browser.newContext({ viewport: { width: 1360, height: 900 } })).newPage();
  await signIn(page, "/console", "root", ADMIN_PASSWORD);
  await page.goto(`${base}/console/d/${DOMAIN}/templates`);
  await page.selectOption('select[name="template"]', "yealink/mac.cfg");
  await page.click('form:has(select[name="template"]) button[type="submit"]');
  const source = page.locator('textarea[name="source"]');
  assert.match(await source.inputValue(), /account\.\{\{ line\.number \}\}\.user_name/, "starts from the built-in");
  // A mistake: the live preview (script) shows it at its line, without a click.
  await source.fill("#!version:1.0.0.1\naccount.1.label = {{ lines[0].label | frobnicate }}\n");
  await page.waitForSelector("[data-problem]:not([hidden])");
  assert.match(await page.textContent("[data-problem]"), /Line 2, column \d+:.*frobnicate/);
  await shot(page, "13-console-template-problem");
  // Fixed, previewed for the real phone: its lines, passwords masked.
  await page.fill('input[name="mac"]', "00:15:65:aa:bb:01");
  await source.fill("#!version:1.0.0.1\n{% for line in lines %}account.{{ line.number }}.user_name = {{ line.sip_user }}\naccount.{{ line.number }}.password = {{ line.password }}\n{% endfor %}");
  await page.waitForFunction(() => document.querySelector("[data-output]").textContent.includes("account.2.user_name = 202"));
  const out = await page.textContent("[data-output]");
  assert.match(out, /account\.1\.password = \*{8}/);
  assert.ok(!out.includes("sip-secret-201"), "the preview masks the SIP password");
  await page.click('button[value="save"]');
  await page.waitForSelector(".notice");
  await shot(page, "12-console-template");
  // The phone's file now comes from it (the device page's preview says so).
  await page.goto(`${base}/console/d/${DOMAIN}/devices/001565aabb01?file=001565aabb01.cfg`);
  const preview = await page.textContent("section.preview");
  assert.match(preview, /account\.2\.user_name = 202/);
  assert.ok(!preview.includes("sip_server"), "the built-in template is replaced");
  // Removed again: the built-in is back.
  await page.goto(`${base}/console/d/${DOMAIN}/templates`);
  await page.click("td.mono a");
  await page.click('button[value="delete"]');
  assert.match(await page.textContent("main"), /No stored templates/);
  await page.context().close();
});

test("a domain admin cannot open another domain's device by URL", async () => {
  await api("POST", "/api/v1/domains", { name: "other.example" });
  await api("POST", "/api/v1/domains/other.example/devices", { mac: "001565cc0001" });
  await api("POST", "/api/v1/admins", { name: "ann", role: "domain-admin", domain: DOMAIN, password: "ann-password-1" });
  const page = await (await browser.newContext()).newPage();
  await signIn(page, "/console", "ann", "ann-password-1");
  assert.equal(new URL(page.url()).pathname, `/console/d/${DOMAIN}`);
  assert.ok(!(await page.isVisible("text=Domains")), "no list of all domains");
  const own = await page.goto(`${base}/console/d/${DOMAIN}/devices/001565aabb01`);
  assert.equal(own.status(), 200);
  const other = await page.goto(`${base}/console/d/other.example/devices/001565cc0001`);
  assert.equal(other.status(), 404);
  assert.ok(!(await page.content()).includes("001565cc0001"));
  const viaOwn = await page.goto(`${base}/console/d/${DOMAIN}/devices/001565cc0001`);
  assert.equal(viaOwn.status(), 404);
  await shot(page, "10-console-not-found");
  await page.context().close();
});
