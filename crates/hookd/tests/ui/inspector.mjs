// Drives hookd's web inspector in headless Chromium against a running daemon seeded by
// crates/hookd/tests/ui.rs: every page and every button, a screenshot of each page.
//
//   node inspector.mjs <base-url> <api-key> <screenshot-dir>
//
// Exits 0 when every check passed; otherwise prints the failed check and exits 1.

import {mkdirSync, mkdtempSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

const [base, key, shots] = process.argv.slice(2);
if (!base || !key || !shots) {
  console.error('usage: node inspector.mjs <base-url> <api-key> <screenshot-dir>');
  process.exit(2);
}
const CHROMIUM = process.env.HOOKD_CHROMIUM || '/usr/bin/chromium';
// What ui.rs seeds: one endpoint, one dead-lettered delivery (three 500s), six delivered ones.
const ENDPOINT = 'inspector demo';
// No double quotes: it is compared with the JSON text of the body, where they would be escaped.
const HOSTILE = '<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>';
const DELIVERED = 6;
const PATIENCE = 30_000;

function check(ok, what) {
  if (!ok) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

async function eventually(what, probe) {
  const deadline = Date.now() + PATIENCE;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last === true) return console.log('ok - ' + what);
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`not ${what} after ${PATIENCE} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const userData = mkdtempSync(join(tmpdir(), 'hookd-ui-chromium-'));
mkdirSync(shots, {recursive: true});
// A fresh profile each run (Playwright passes it as --user-data-dir).
const context = await chromium.launchPersistentContext(userData, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: {width: 1280, height: 900},
});
let failed = false;
try {
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], {origin: base});
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    // The API's error answers are expected (the checks provoke them); anything else is not.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      pageErrors.push('console: ' + m.text());
    }
  });
  // Collects CSP violations; init scripts run outside the page's policy.
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation',
      (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
  });
  const shot = async (name) => {
    await page.screenshot({path: join(shots, name + '.png'), fullPage: true});
    console.log('screenshot ' + name + '.png');
  };
  const text = (sel) => page.locator(sel).first().innerText();
  const errorShown = async (code) => {
    await page.locator('#error').waitFor({state: 'visible'});
    const got = await text('#error-code');
    check(got === code, `the API's error code ${code} is shown (got ${got})`);
    const msg = await text('#error-message');
    check(msg.length > 0, `the API's error message is shown: ${msg}`);
    return msg;
  };

  // ---- the page and its headers --------------------------------------------------------
  const resp = await page.goto(base + '/ui');
  check(resp.status() === 200, 'GET /ui answers 200');
  const csp = resp.headers()['content-security-policy'] || '';
  check(csp.startsWith("default-src 'self'") && !csp.includes('unsafe-inline'),
    'GET /ui carries a strict Content-Security-Policy: ' + csp);

  // ---- sign in -------------------------------------------------------------------------
  await page.locator('#sign-in').waitFor({state: 'visible'});
  check(await page.locator('#nav').isHidden(), 'signed out: no navigation');
  await shot('01-sign-in');
  await page.fill('#api-key', 'not-the-key');
  await page.click('#sign-in-go');
  await errorShown('UNAUTHORIZED');
  check(await page.evaluate(() => sessionStorage.length) === 0, 'a refused key is not kept');
  await shot('02-sign-in-refused');
  await page.fill('#api-key', key);
  await page.click('#sign-in-go');
  await page.locator('#endpoints').waitFor();
  check(await page.locator('#error').isHidden(), 'the error is gone after signing in');
  const stored = await page.evaluate(() => ({
    session: Object.values(sessionStorage), local: localStorage.length, cookie: document.cookie,
  }));
  check(stored.session.includes(key), 'the key is in sessionStorage');
  check(stored.local === 0 && stored.cookie === '', 'nothing in localStorage or cookies');
  check(!page.url().includes(key), 'the key is not in the URL');

  // ---- endpoints with their health -----------------------------------------------------
  const row = page.locator('#endpoints tbody tr', {hasText: ENDPOINT});
  check(await row.count() === 1, 'the endpoint is listed');
  const rate = await row.locator('[data-field=success-rate]').innerText();
  const expected = (100 * DELIVERED / (DELIVERED + 1)).toFixed(1) + ' %';
  check(rate === expected, `success rate ${expected} (got ${rate})`);
  const cells = await row.locator('td').allInnerTexts();
  check(cells[2] === 'enabled', 'state enabled');
  check(cells[4] === String(DELIVERED) && cells[5] === '1', 'delivered and dead-lettered counts');
  check(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(cells[7]), 'last delivery time: ' + cells[7]);
  await shot('03-endpoints');

  // ---- one endpoint: deliveries, filters, pagination ----------------------------------
  await row.locator('a').first().click();
  await page.locator('#deliveries').waitFor();
  const endpointUrl = page.url();
  const rows = page.locator('#deliveries tbody tr');
  check(await rows.count() === DELIVERED + 1, 'every delivery is listed');
  await shot('04-endpoint');

  await page.selectOption('#filter-status', 'dead_lettered');
  await page.click('#filter-apply');
  await eventually('filtered to the dead-lettered delivery', async () =>
    page.url().includes('status=dead_lettered') && await rows.count() === 1 &&
    await rows.first().locator('[data-status]').innerText() === 'dead_lettered');
  await shot('05-deliveries-dead-lettered');

  await page.selectOption('#filter-status', 'delivered');
  await page.fill('#filter-to', '2000-01-01T00:00');
  await page.click('#filter-apply');
  await page.locator('#no-deliveries').waitFor();
  check(page.url().includes('to=2000-01-01T00%3A00%3A00Z'), 'the time filter is sent as RFC 3339');
  await page.fill('#filter-to', '');
  await page.fill('#filter-from', '2000-01-01T00:00');
  await page.click('#filter-apply');
  await eventually('delivered deliveries since 2000', async () => await rows.count() === DELIVERED);

  await page.selectOption('#filter-status', '');
  await page.fill('#filter-from', '');
  await page.selectOption('#filter-limit', '5');
  await page.click('#filter-apply');
  await eventually('a first page of 5', async () => await rows.count() === 5);
  const firstPage = await rows.allInnerTexts();
  await page.click('#page-next');
  await eventually('a second page of the rest', async () =>
    await rows.count() === DELIVERED + 1 - 5 && page.url().includes('cursor='));
  const secondPage = await rows.allInnerTexts();
  check(!secondPage.some((r) => firstPage.includes(r)), 'the pages do not overlap');
  await shot('06-deliveries-page-2');
  await page.click('#page-first');
  await eventually('back on the first page', async () =>
    !page.url().includes('cursor=') && await rows.count() === 5);

  // ---- one failed delivery: the exact request and the response -------------------------
  await page.goto(endpointUrl.split('?')[0] + '?status=dead_lettered');
  await rows.first().waitFor();
  await rows.first().locator('a').first().click();
  await page.locator('#delivery-page').waitFor();
  const attempts = page.locator('section.attempt');
  check(await attempts.count() === 3, 'three attempts are shown');
  const first = page.locator('section.attempt[data-attempt="1"]');
  const headerNames = await first.locator('table.headers tbody tr td:first-child').allInnerTexts();
  for (const h of ['content-type', 'webhook-id', 'webhook-timestamp', 'webhook-signature', 'user-agent']) {
    check(headerNames.includes(h), 'the request shows header ' + h);
  }
  const sig = await first.locator('table.headers tbody tr', {hasText: 'webhook-signature'})
    .locator('td').nth(1).innerText();
  check(/^v1,[A-Za-z0-9+/=]+$/.test(sig), 'the signature value is shown: ' + sig);
  const reqBody = await first.locator('.request-body').innerText();
  check(reqBody.includes(HOSTILE), 'the request body shows the hostile payload as text');
  check(await first.locator('.response-status').innerText() === '500', 'the response status');
  check((await first.locator('.response-body').innerText()) === 'fail 1', 'the response body excerpt');
  check(/ ms/.test(await first.locator('h3').innerText()), 'the latency');
  check(await page.evaluate(() => window.__pwned) === undefined, 'the payload ran no script');
  check(await page.locator('img').count() === 0, 'the payload made no element');
  await shot('07-delivery-failed');

  // ---- retry ---------------------------------------------------------------------------
  await page.click('#retry');
  await eventually('the retry is delivered and shown', async () =>
    await page.locator('#attempt-count').innerText() === '4' &&
    await page.locator('#delivery-page [data-status]').first().innerText() === 'delivered');
  check((await page.locator('section.attempt[data-attempt="4"] .response-status').innerText()) === '200',
    'the retry attempt shows 200');
  await page.locator('#notice').waitFor({state: 'visible'});
  await shot('08-delivery-retried');
  await page.click('#retry');
  await errorShown('CONFLICT');
  await shot('09-retry-refused');

  // ---- event lookup --------------------------------------------------------------------
  const eventId = await page.locator('#delivery-page .facts a.mono').first().innerText();
  await page.fill('#event-id', eventId);
  await page.click('#event-lookup-go');
  await page.locator('#event-page').waitFor();
  check((await text('#event-page h1')).includes(eventId), 'the event page shows the event');
  check((await text('#event-data')).includes(HOSTILE), 'the event data is shown as text');
  check(await page.locator('#event-deliveries tbody tr').count() === 1, 'with its delivery');
  check(await page.evaluate(() => window.__pwned) === undefined, 'the event data ran no script');
  await shot('10-event');
  await page.fill('#event-id', 'evt_does_not_exist');
  await page.click('#event-lookup-go');
  await errorShown('NOT_FOUND');

  // ---- endpoint buttons: test event, disable/enable, rotate secret ---------------------
  await page.goto(endpointUrl.split('?')[0]);
  await page.locator('#deliveries').waitFor();
  await page.selectOption('#test-type', {index: 0});
  await page.click('#send-test');
  await page.locator('#notice').waitFor({state: 'visible'});
  const sent = await text('#notice');
  check(/^Test event delivered: HTTP 2\d\d in \d+ ms/.test(sent), 'the test event is delivered: ' + sent);
  await shot('11-test-event-sent');

  await page.click('#toggle-enabled');
  await eventually('the endpoint shows disabled', async () =>
    await text('#endpoint-state') === 'disabled' && await text('#toggle-enabled') === 'Enable');
  await shot('12-endpoint-disabled');
  await page.click('#toggle-enabled');
  await eventually('the endpoint shows enabled', async () =>
    await text('#endpoint-state') === 'enabled' && await text('#toggle-enabled') === 'Disable');

  await page.click('#rotate-secret');
  await page.locator('#secret-dialog').waitFor({state: 'visible'});
  const secret = await text('#secret-value');
  check(/^whsec_[A-Za-z0-9+/=]{40,}$/.test(secret), 'the new secret is shown');
  await page.click('#secret-copy');
  await page.locator('#secret-copied').waitFor({state: 'visible'});
  check(await page.evaluate(() => navigator.clipboard.readText()) === secret, 'copy puts it on the clipboard');
  await shot('13-secret-rotated');
  await page.click('#secret-close');
  await page.locator('#secret-dialog').waitFor({state: 'hidden'});
  check(await page.locator('#secret-value').innerText() === '', 'the secret is gone once closed');
  console.log('rotated-secret ' + secret);

  // ---- sign out ------------------------------------------------------------------------
  await page.click('#sign-out');
  await page.locator('#sign-in').waitFor({state: 'visible'});
  check(await page.evaluate(() => sessionStorage.length) === 0, 'signing out forgets the key');
  check(await page.locator('#view').innerText() === '', 'signing out clears the page');

  const csp_violations = await page.evaluate(() => window.__csp);
  check(csp_violations.length === 0, 'no CSP violation: ' + JSON.stringify(csp_violations));
  check(pageErrors.length === 0, 'no page error: ' + JSON.stringify(pageErrors));
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
  // What the page looked like when the check failed (not one of the page screenshots).
  for (const p of context.pages()) {
    await p.screenshot({path: join(shots, 'failure.png'), fullPage: true}).catch(() => {});
    console.error('page text at the failure:\n' + await p.locator('body').innerText().catch(() => ''));
  }
} finally {
  await context.close();
  rmSync(userData, {recursive: true, force: true});
}
process.exit(failed ? 1 : 0);
