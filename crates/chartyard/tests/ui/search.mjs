// Search: the header's search form leads to the results page; the exact chart name comes
// first; the results and their total are those of GET /api/v1/search, page by page.

import * as ui from './lib.mjs';

const d = ui.data();

/** `space/chart` of every result on the page, in order, and the total it states. */
async function results(page) {
  const items = await page
    .locator('ol#results li[data-space][data-chart]')
    .evaluateAll((lis) => lis.map((li) => `${li.dataset.space}/${li.dataset.chart}`));
  const totalText = await ui.text(page, '#total');
  const total = Number((totalText.match(/\d+/) ?? [])[0]);
  ui.assert(Number.isInteger(total), `#total holds a number: ${JSON.stringify(totalText)}`);
  return { items, total };
}

/** GET /api/v1/search as the same caller. */
async function api(page, q, start, limit) {
  const query = new URLSearchParams({ q, start: String(start), limit: String(limit) });
  const response = await ui.http(page.context()).get(ui.url(`/api/v1/search?${query}`));
  ui.assertEq(response.status(), 200, `GET /api/v1/search?${query}`);
  const body = await response.json();
  return { items: body.items.map((h) => `${h.space}/${h.chart}`), total: body.metadata.total };
}

/** The results page for `q` from `start` agrees with the API. */
async function agrees(page, q, start) {
  const shown = await results(page);
  const wanted = await api(page, q, start, Math.max(shown.items.length, 1));
  ui.assertEq(shown.total, wanted.total, `#total for ${q}`);
  ui.assertEq(JSON.stringify(shown.items), JSON.stringify(wanted.items), `results for ${q} from ${start}`);
  return shown;
}

await ui.scenario('search', async (browser) => {
  const context = await ui.newContext(browser);
  const page = await context.newPage();

  ui.step(`search "${d.exact}" from the header`);
  await ui.open(page, '/_/ui/');
  const box = page.locator('header form#search input[name=q]');
  await box.fill(d.exact);
  await Promise.all([page.waitForURL((u) => u.pathname === '/_/ui/-/search'), box.press('Enter')]);
  ui.assertEq(new URL(page.url()).searchParams.get('q'), d.exact, 'q of the results page');
  const exact = await agrees(page, d.exact, 0);
  ui.assert(exact.items.length >= 3, `several hits for ${d.exact}: ${exact.items}`);
  ui.assert(exact.items[0].endsWith(`/${d.exact}`), `the exact name comes first: ${exact.items}`);
  const named = exact.items.filter((i) => i.endsWith(`/${d.exact}`));
  ui.assertEq(
    JSON.stringify(exact.items.slice(0, named.length)),
    JSON.stringify(named),
    'every space holding the exact name comes before other hits',
  );
  await ui.review(page, 'search');

  ui.step('a result leads to its chart page');
  const [space, chart] = exact.items[0].split('/');
  await page.locator(`ol#results li[data-space="${space}"][data-chart="${chart}"] a`).first().click();
  await page.waitForURL((u) => u.pathname === `/_/ui/${space}/${chart}`);
  ui.assertEq(await ui.text(page, 'main h1'), chart, 'h1 of the chart page');

  ui.step(`search "${d.many}", page by page`);
  await ui.open(page, `/_/ui/-/search?q=${encodeURIComponent(d.many)}`);
  const first = await agrees(page, d.many, 0);
  ui.assert(first.total >= 10, `many hits for ${d.many}: ${first.total}`);
  let seen = first.items.length;
  while (seen < first.total) {
    await ui.open(page, `/_/ui/-/search?q=${encodeURIComponent(d.many)}&start=${seen}`);
    const next = await agrees(page, d.many, seen);
    ui.assert(next.items.length > 0, `the page from ${seen} lists hits`);
    seen += next.items.length;
  }
  ui.assertEq(seen, first.total, `hits over all pages of ${d.many}`);
  ui.assert(seen > first.items.length, `the hits of ${d.many} fill more than one page`);

  ui.step('a search without hits');
  await ui.open(page, `/_/ui/-/search?q=${encodeURIComponent(d.none)}`);
  const none = await results(page);
  ui.assertEq(none.total, 0, `#total for ${d.none}`);
  ui.assertEq(none.items.length, 0, `results for ${d.none}`);
  await ui.review(page, 'search-empty');
  await context.close();
});
