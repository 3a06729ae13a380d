// Browsing an open server: space list -> space -> chart -> template and older version, with
// the README, values, install snippets and download of real charts; every main page passes
// axe and is photographed; the chart page reads the same with JavaScript disabled. The
// install snippets are saved as snippets.json for the test to run with real helm.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as ui from './lib.mjs';

const d = ui.data();
const { space, latest, older, other } = d;
const chartPath = `/_/ui/${space}/${latest.chart}`;
const host = new URL(ui.BASE).host;

/** Whether two JSON values are equal, whatever the order of object keys. */
function sameJson(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]));
  }
  return a === b;
}

/** The header every page carries on an open server. */
async function header(page) {
  ui.assertEq(await page.locator('header a#home').getAttribute('href'), '/_/ui/', 'a#home');
  await ui.present(page, 'header form#search input[name=q]');
  await ui.absent(page, 'a#signin', 'on an open server');
  await ui.absent(page, '#whoami', 'on an open server');
  // A README keeps its own headings; the page's are outside it.
  const h1 = await page.locator('main h1').evaluateAll((all) => all.filter((h) => !h.closest('#readme')).length);
  ui.assertEq(h1, 1, `${page.url()}: h1 elements in main outside #readme`);
}

/** The chart page of `v` (one entry of the scenario data), as any context shows it. */
async function chartPage(page, v, { js }) {
  ui.assertEq(await ui.text(page, 'main h1'), v.chart, 'h1');
  ui.assertIncludes(await ui.text(page, '#version'), v.version, '#version');
  if (v.metadata.appVersion) {
    ui.assertIncludes(await ui.text(page, '#app-version'), String(v.metadata.appVersion), '#app-version');
  }
  ui.assertIncludes(ui.norm(await ui.text(page, '#description')), ui.norm(v.metadata.description), '#description');
  await ui.absent(page, '#deprecated', 'for a chart that is not deprecated');

  // README: its prose, as rendered.
  const readme = ui.norm(await page.locator('#readme').innerText());
  const lines = ui.plainLines(v.readme);
  ui.assert(lines.length > 0, `the README of ${v.chart} ${v.version} has prose lines to look for`);
  for (const line of lines) ui.assertIncludes(readme, ui.norm(line), `#readme of ${v.version}`);

  // values.yaml exactly as shipped (an HTML parser drops one newline right after <pre>);
  // values.schema.json as the same JSON (it may be laid out anew).
  const shipped = (s) => s.replace(/^\n/, '').trimEnd();
  ui.assertEq(shipped(await page.locator('pre#values').textContent()), v.values.trimEnd(), 'pre#values');
  if (v.schema) {
    const shown = await page.locator('pre#schema').textContent();
    let parsed;
    try {
      parsed = JSON.parse(shown);
    } catch (error) {
      ui.fail(`pre#schema is not JSON (${error.message}): ${shown.slice(0, 200)}`);
    }
    ui.assert(sameJson(parsed, JSON.parse(v.schema)), 'pre#schema holds the JSON of values.schema.json');
  } else {
    await ui.absent(page, 'pre#schema', 'without values.schema.json');
  }

  // Every template is listed.
  const listed = (await page.locator('ul#templates a').allTextContents()).map((t) => t.trim());
  for (const name of Object.keys(v.templates).filter((n) => n.endsWith('.yaml'))) {
    const base = name.slice('templates/'.length);
    ui.assert(
      listed.some((t) => t === name || t === base || t.endsWith(`/${base}`)),
      `ul#templates lists ${name} (listed: ${listed.join(', ')})`,
    );
  }

  // Install snippets with this server's exact URLs and this version.
  const repo = await ui.text(page, '#install pre.snippet[data-protocol=repo]');
  ui.assertIncludes(repo, `helm repo add`, 'repo snippet');
  ui.assertIncludes(repo, `${ui.BASE}/${v.space}`, 'repo snippet: the space as a Helm repository');
  ui.assertIncludes(repo, `helm install`, 'repo snippet');
  ui.assertIncludes(repo, `${v.chart} --version ${v.version}`, 'repo snippet: chart and version');
  const oci = await ui.text(page, '#install pre.snippet[data-protocol=oci]');
  ui.assertIncludes(oci, `oci://${host}/${v.space}/${v.chart}`, 'oci snippet');
  ui.assertIncludes(oci, `--version ${v.version}`, 'oci snippet');
  for (const protocol of ['repo', 'oci']) {
    await ui.present(page, `#install pre.snippet[data-protocol=${protocol}] ~ button.copy`, '(a copy button after the snippet)');
  }

  // Versions table.
  for (const version of d.versions) {
    await ui.present(page, `table#versions tr[data-version="${version}"]`);
  }
  const row = ui.norm(await ui.text(page, `table#versions tr[data-version="${v.version}"]`));
  ui.assertIncludes(row, v.sha256.slice(0, 12), `the digest in the row of ${v.version}`);

  // The archive behind the download link is the uploaded one.
  const href = await page.locator('a#download-archive').getAttribute('href');
  ui.assertEq(
    new URL(href, page.url()).pathname,
    `/_/ui/${v.space}/${v.chart}/${v.version}/archive`,
    'a#download-archive',
  );
  const response = await ui.http(page.context()).get(new URL(href, page.url()).href);
  ui.assertEq(response.status(), 200, 'archive download');
  ui.assertIncludes(response.headers()['content-disposition'] ?? '', 'attachment', 'archive Content-Disposition');
  const digest = crypto.createHash('sha256').update(await response.body()).digest('hex');
  ui.assertEq(digest, v.sha256, 'sha256 of the downloaded archive');
  await ui.absent(page, 'a#download-prov', 'without a provenance file');
  if (js) await ui.present(page, 'form#delete-version', 'on an open server');
}

await ui.scenario('browse', async (browser) => {
  const context = await ui.newContext(browser);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ui.BASE });
  const page = await context.newPage();

  ui.step('/ in a browser goes to the space list');
  await ui.open(page, '/');
  ui.assertEq(new URL(page.url()).pathname, '/_/ui/', 'where / leads a browser');
  await header(page);
  for (const [name, count] of Object.entries(d.counts)) {
    ui.assertEq(await ui.text(page, `table#spaces tr[data-space="${name}"] td.count`), String(count), `charts of ${name}`);
  }
  await ui.present(page, 'form#create-space input[name=space]', 'on an open server');
  await ui.review(page, 'spaces');

  ui.step('space page');
  await page.locator(`table#spaces tr[data-space="${space}"] a`).first().click();
  await page.waitForURL((u) => u.pathname === `/_/ui/${space}`);
  await header(page);
  for (const v of [latest, other]) {
    const item = `ul#charts li[data-chart="${v.chart}"]`;
    ui.assertEq(await ui.text(page, `${item} .version`), v.version, `latest version of ${v.chart}`);
    ui.assertIncludes(ui.norm(await ui.text(page, `${item} .description`)), ui.norm(v.metadata.description), `description of ${v.chart}`);
  }
  ui.assertEq(await page.locator('ul#charts li[data-chart]').count(), 2, 'charts listed');
  await ui.present(page, 'form#upload input[name=chart]', 'on an open server');
  await ui.present(page, 'form#delete-space', 'on an open server');
  await ui.review(page, 'space');

  ui.step('live filter, then the same filter server-side');
  const filter = page.locator('form#filter input[name=q]');
  await filter.fill('snmp');
  await page.locator(`ul#charts li[data-chart="${latest.chart}"]`).waitFor({ state: 'hidden' });
  ui.assert(await page.locator(`ul#charts li[data-chart="${other.chart}"]`).isVisible(), 'the matching chart stays visible');
  await Promise.all([page.waitForURL((u) => u.searchParams.get('q') === 'snmp'), filter.press('Enter')]);
  ui.assertEq(await page.locator('ul#charts li[data-chart]').count(), 1, 'charts listed for ?q=snmp');
  await ui.present(page, `ul#charts li[data-chart="${other.chart}"]`);

  ui.step('chart page at the latest version');
  await ui.open(page, `/_/ui/${space}`);
  await page.locator(`ul#charts li[data-chart="${latest.chart}"] a`).first().click();
  await page.waitForURL((u) => u.pathname === chartPath);
  await header(page);
  await chartPage(page, latest, { js: true });
  await ui.review(page, 'chart');

  // The test runs these with real helm once the browser is done.
  const snippets = {
    repo: await ui.text(page, '#install pre.snippet[data-protocol=repo]'),
    oci: await ui.text(page, '#install pre.snippet[data-protocol=oci]'),
  };
  fs.writeFileSync(path.join(ui.ARTIFACTS, 'snippets.json'), JSON.stringify(snippets, null, 2));

  ui.step('copy button copies the snippet');
  const oci = await ui.text(page, '#install pre.snippet[data-protocol=oci]');
  await page.locator('#install pre.snippet[data-protocol=oci] ~ button.copy').first().click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  ui.assertEq(copied.trim(), oci, 'clipboard after copying the OCI snippet');

  ui.step('a template page');
  const base = d.template.slice('templates/'.length);
  const link = page.locator('ul#templates a').filter({ hasText: base }).first();
  await link.click();
  await page.waitForURL((u) => u.pathname.startsWith(`/_/ui/${space}/${latest.chart}/${latest.version}/templates/`));
  ui.assert(page.url().endsWith(base), `template page URL ${page.url()} names ${base}`);
  const template = (await page.locator('pre#template').textContent()).replace(/^\n/, '');
  ui.assertEq(template.trimEnd(), latest.templates[d.template].trimEnd(), 'pre#template');
  await header(page);
  await ui.review(page, 'template');

  ui.step('an older version from the versions table, and by deep link');
  await ui.open(page, chartPath);
  await page.locator(`table#versions tr[data-version="${older.version}"] a`).first().click();
  await page.waitForURL((u) => u.pathname === `${chartPath}/${older.version}`);
  await chartPage(page, older, { js: true });
  await ui.review(page, 'chart-older');
  await ui.open(page, `${chartPath}/${older.version}`);
  ui.assertIncludes(await ui.text(page, '#version'), older.version, '#version by deep link');

  ui.step('a chart that does not exist');
  await ui.open(page, `/_/ui/${space}/no-such-chart`, 404);
  await ui.present(page, 'main p.error[role=alert]');
  await ui.review(page, 'not-found');
  await context.close();

  ui.step('dark theme, and a phone-sized window');
  const dark = await ui.newContext(browser, { colorScheme: 'dark' });
  const darkPage = await dark.newPage();
  for (const [name, p] of [
    ['spaces-dark', '/_/ui/'],
    ['space-dark', `/_/ui/${space}`],
    ['chart-dark', chartPath],
    ['search-dark', `/_/ui/-/search?q=${latest.chart}`],
  ]) {
    await ui.open(darkPage, p);
    await ui.review(darkPage, name);
  }
  await dark.close();
  const narrow = await ui.newContext(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const narrowPage = await narrow.newPage();
  for (const [name, p] of [
    ['space-narrow', `/_/ui/${space}`],
    ['chart-narrow', chartPath],
  ]) {
    await ui.open(narrowPage, p);
    await ui.review(narrowPage, name);
    // Content wider than the window would make the page scroll sideways.
    const width = await narrowPage.evaluate(() => document.documentElement.scrollWidth);
    ui.assert(width <= 390, `${name}: the page is ${width}px wide in a 390px window (it must not scroll sideways)`);
  }
  await narrow.close();

  ui.step('without JavaScript');
  const plain = await ui.newContext(browser, { javaScriptEnabled: false });
  const page2 = await plain.newPage();
  await ui.open(page2, chartPath);
  await chartPage(page2, latest, { js: false });
  await ui.shot(page2, 'chart-nojs');
  await ui.open(page2, `/_/ui/${space}?q=snmp`);
  ui.assertEq(await page2.locator('ul#charts li[data-chart]').count(), 1, 'charts listed for ?q=snmp without JavaScript');
  await plain.close();
});
