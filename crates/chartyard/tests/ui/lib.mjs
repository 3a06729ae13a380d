// What the browser scenarios share: Debian's chromium driven by playwright-core, an
// accessibility check with axe-core, full-page screenshots, small asserts, and a guard that
// fails the scenario when a page asks any host but the server under test.
//
// A scenario is `node <scenario>.mjs` with BASE_URL (the server, e.g. http://127.0.0.1:PORT),
// UI_ARTIFACTS (folder for screenshots) and scenario-specific variables; it exits 0 when every
// check held, 1 with a readable message otherwise. crates/chartyard/tests/it/ui.rs runs them.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

export const CHROMIUM = '/usr/bin/chromium';

/** The server under test, without a trailing slash. */
export const BASE = required('BASE_URL').replace(/\/+$/, '');
const BASE_HOST = new URL(BASE).host;

/** Where screenshots go. */
export const ARTIFACTS = process.env.UI_ARTIFACTS || path.join(process.cwd(), 'ui-artifacts');

/** An environment variable the scenario cannot run without. */
export function required(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is not set`);
  return value;
}

/** What the scenario's page must show, as the test wrote it (`SCENARIO_DATA`). */
export function data() {
  return JSON.parse(fs.readFileSync(required('SCENARIO_DATA'), 'utf8'));
}

/** Text with every run of white space made one space, trimmed. */
export function norm(s) {
  return String(s ?? '').replace(/\s+/g, ' ').trim();
}

/**
 * Up to `n` lines of a README that are plain prose (letters, digits, spaces and simple
 * punctuation, no Markdown syntax), so their text appears as is in the rendered page.
 */
export function plainLines(readme, n = 5) {
  return (readme ?? '')
    .replace(/<!--[\s\S]*?-->/g, '')
    .split('\n')
    .map((line) => line.replace(/^>\s*/, '').trim())
    .filter((line) => line.length >= 12 && /^[A-Za-z][A-Za-z0-9 ,.+()]*$/.test(line))
    .slice(0, n);
}

/** An absolute URL on the server. */
export function url(p) {
  return BASE + p;
}

// ---------------------------------------------------------------------------------------------
// Asserts

export class CheckFailed extends Error {}

export function fail(message) {
  throw new CheckFailed(message);
}

export function assert(condition, message) {
  if (!condition) fail(message);
}

export function assertEq(actual, expected, message) {
  if (actual === expected) return;
  if (typeof actual === 'string' && typeof expected === 'string' && (actual.length > 200 || expected.length > 200)) {
    // Long texts: where they part, with some context, and their lengths.
    let at = 0;
    while (at < actual.length && actual[at] === expected[at]) at++;
    const around = (s) => JSON.stringify(s.slice(Math.max(0, at - 80), at + 80));
    fail(
      `${message}: texts differ at character ${at} (expected ${expected.length} characters, got ${actual.length})\n` +
        `  expected …${around(expected)}…\n  got      …${around(actual)}…`,
    );
  }
  fail(`${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

export function assertIncludes(haystack, needle, message) {
  if (typeof haystack !== 'string' || !haystack.includes(needle)) {
    const shown = typeof haystack === 'string' && haystack.length > 600 ? haystack.slice(0, 600) + '…' : haystack;
    fail(`${message}: ${JSON.stringify(needle)} not found in ${JSON.stringify(shown)}`);
  }
}

/** Prints a progress line, so a failure shows how far the scenario got. */
export function step(message) {
  console.log(`- ${message}`);
}

// ---------------------------------------------------------------------------------------------
// Browser

/** Debian's chromium, headless, with nothing that would reach the network on its own. */
export async function launch() {
  if (!fs.existsSync(CHROMIUM)) {
    fail(`${CHROMIUM} is missing; run scripts/install-test-tools.sh`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

const foreign = [];
const pageErrors = [];

/**
 * A browser context whose every request is checked: requests to the server go through,
 * any other host is aborted and recorded (the scenario then fails). Pages opened in it
 * record uncaught script errors, which fail the scenario too.
 */
export async function newContext(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(30_000);
  await context.route('**/*', (route) => {
    const target = route.request().url();
    let host;
    try {
      host = new URL(target).host;
    } catch {
      host = '';
    }
    if (host === BASE_HOST) return route.continue();
    foreign.push(target);
    return route.abort('blockedbyclient');
  });
  context.on('page', watchPage);
  return context;
}

/** The foreign requests recorded so far, forgetting them (for checking the guard itself). */
export function takeForeign() {
  return foreign.splice(0);
}

function watchPage(page) {
  // Confirmation prompts (delete buttons may ask) are accepted, as a user would.
  page.on('dialog', (dialog) => {
    console.log(`  [dialog] ${dialog.type()}: ${dialog.message()} -> accepted`);
    dialog.accept().catch(() => {});
  });
  page.on('pageerror', (error) => pageErrors.push(`${page.url()}: ${error.message}`));
  page.on('console', (message) => {
    // Error statuses are what the scenarios ask for and check themselves.
    if (message.type() !== 'error' || /the server responded with a status of [45]\d\d/.test(message.text())) return;
    console.log(`  [console error] ${page.url()}: ${message.text()}`);
  });
}

/** Opens `p` (a path on the server) and asserts the answer's status (200 unless given). */
export async function open(page, p, status = 200) {
  const response = await page.goto(url(p));
  assert(response, `no response for ${p}`);
  assertEq(response.status(), status, `status of GET ${p}`);
  return response;
}

/** The trimmed text of the first element matching `selector`, failing when there is none. */
export async function text(page, selector) {
  const locator = page.locator(selector).first();
  if ((await locator.count()) === 0) fail(`${page.url()}: no element matches ${selector}`);
  return (await locator.textContent()).trim();
}

/** Asserts that `selector` matches at least one element on the page. */
export async function present(page, selector, message = '') {
  const n = await page.locator(selector).count();
  assert(n > 0, `${page.url()}: expected ${selector} ${message}`.trim());
}

/** Asserts that `selector` matches nothing on the page. */
export async function absent(page, selector, message = '') {
  const n = await page.locator(selector).count();
  assert(n === 0, `${page.url()}: expected no ${selector} ${message} (found ${n})`.trim());
}

// ---------------------------------------------------------------------------------------------
// Forms

const SUBMIT = 'button[type=submit], input[type=submit], button:not([type])';

/** Sets field `name` of `form` (a selector): an option of a select, the text of anything else. */
export async function setField(page, form, name, value) {
  const field = page.locator(`${form} [name="${name}"]`).first();
  if ((await field.count()) === 0) fail(`${page.url()}: ${form} has no field ${name}`);
  const tag = await field.evaluate((e) => e.tagName);
  if (tag === 'SELECT') await field.selectOption(value);
  else await field.fill(value);
}

/**
 * Submits `form` (a selector) with its submit button, or with `trigger` when given, and
 * waits for the page it leads to. Answers the final response and, when the form's POST was
 * redirected, the POST's own status.
 */
export async function submit(page, form, trigger) {
  const [response] = await Promise.all([
    page.waitForNavigation(),
    trigger ? trigger() : page.locator(form).locator(SUBMIT).first().click(),
  ]);
  assert(response, `${form}: no response`);
  const post = response.request().redirectedFrom();
  return { status: response.status(), posted: post ? (await post.response())?.status() : response.status() };
}

/**
 * Runs `act` (which may or may not submit a form by itself, e.g. a file input or drop
 * zone handled by the page's script), then clicks `form`'s submit button unless the page
 * already navigated; waits for the page it leads to.
 */
export async function submitAfter(page, form, act) {
  let navigated = false;
  const navigation = page.waitForNavigation().then((r) => {
    navigated = true;
    return r;
  });
  await act();
  await page.waitForTimeout(1000);
  if (!navigated) await page.locator(form).locator(SUBMIT).first().click();
  const response = await navigation;
  assert(response, `${form}: no response`);
  return response;
}

/** The `Authorization` header of a user's password. */
export function basic(user, password) {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** A request outside the browser: `fetch` on the server with an optional Authorization. */
export async function call(method, p, authorization, body) {
  const headers = authorization ? { authorization } : {};
  return fetch(url(p), { method, headers, body, redirect: 'manual' });
}

// ---------------------------------------------------------------------------------------------
// Accessibility and screenshots

let axeSource;

/**
 * Runs axe-core on the page (but the elements `exclude` selects); fails on any violation
 * of impact serious or critical, printing each with the elements concerned. Lesser
 * violations are printed only.
 */
export async function axeCheck(page, label = page.url(), { exclude = [] } = {}) {
  axeSource ??= fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  // Evaluated through the debugging protocol, so a Content-Security-Policy that forbids
  // inline scripts (as the server's does) does not stop it.
  await page.evaluate(axeSource);
  const results = await page.evaluate(async (exclude) => {
    const context = exclude.length ? { include: [document], exclude: exclude.map((s) => [s]) } : document;
    // eslint-disable-next-line no-undef
    const r = await axe.run(context, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary?.split('\n').join(' ')}`),
    }));
  }, exclude);
  const serious = results.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of results) {
    const mark = serious.includes(v) ? 'VIOLATION' : 'note';
    console.log(`  [axe ${mark}] ${label}: ${v.id} (${v.impact}) ${v.help}`);
    for (const node of v.nodes.slice(0, 5)) console.log(`      ${node}`);
  }
  if (serious.length) {
    fail(`${label}: axe found ${serious.length} serious or critical violation(s): ${serious.map((v) => v.id).join(', ')}`);
  }
}

/** Saves a full-page screenshot as `$UI_ARTIFACTS/<name>.png`. */
export async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** A main page: its screenshot and the accessibility check. */
export async function review(page, name, options) {
  await shot(page, name);
  await axeCheck(page, name, options);
}

// ---------------------------------------------------------------------------------------------
// Running a scenario

/**
 * Runs `body(browser)` with a launched chromium, then checks that no page asked a foreign
 * host and no page script failed. Exits 0 when all held; otherwise prints what failed
 * (with a screenshot of every open page, named `failure-N`) and exits 1.
 */
export async function scenario(name, body) {
  let browser;
  let code = 0;
  try {
    browser = await launch();
    await body(browser);
    if (foreign.length) {
      fail(`pages asked hosts other than ${BASE_HOST}:\n  ${[...new Set(foreign)].join('\n  ')}`);
    }
    if (pageErrors.length) {
      fail(`page scripts failed:\n  ${pageErrors.join('\n  ')}`);
    }
    console.log(`${name}: all checks passed`);
  } catch (error) {
    code = 1;
    const message = error instanceof CheckFailed ? error.message : error?.stack || String(error);
    console.error(`${name}: FAILED: ${message}`);
    if (browser) {
      let n = 0;
      for (const context of browser.contexts()) {
        for (const page of context.pages()) {
          try {
            const file = await shot(page, `failure-${n++}`);
            console.error(`  screenshot of ${page.url()}: ${file}`);
          } catch {
            // The page may be gone with the browser; the message above is what matters.
          }
        }
      }
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  process.exit(code);
}

/** The cookies-sharing HTTP client of a context, for requests made outside any page. */
export function http(context) {
  return context.request;
}
