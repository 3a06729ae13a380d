// A private space readable only by one user: anonymous callers get 401 (with the sign-in
// form) and another signed-in user 403 on every page of it; neither finds it in the space
// list or in search (UI and API); its reader signs in from the 401 page, lands on it and
// finds it everywhere.

import * as ui from './lib.mjs';

const d = ui.data();
const READER = ui.required('UI_READER');
const READER_PASSWORD = ui.required('UI_READER_PASSWORD');
const OTHER = ui.required('UI_OTHER');
const OTHER_PASSWORD = ui.required('UI_OTHER_PASSWORD');
const { hidden, open } = d; // versions seeded in the private and the public space
const hiddenPages = [
  `/_/ui/${hidden.space}`,
  `/_/ui/${hidden.space}/${hidden.chart}`,
  `/_/ui/${hidden.space}/${hidden.chart}/${hidden.version}`,
  // A template page: `templates/{path below the chart's templates folder}`.
  `/_/ui/${hidden.space}/${hidden.chart}/${hidden.version}/${d.template}`,
];
const secret = ui.norm(ui.plainLines(hidden.readme)[0]);

/** Space list and search of `page`'s caller: the public space is there, the private one not (or is, for `sees`). */
async function listings(page, sees, authorization) {
  await ui.open(page, '/_/ui/');
  await ui.present(page, `table#spaces tr[data-space="${open.space}"]`);
  const rows = await page.locator(`table#spaces tr[data-space="${hidden.space}"]`).count();
  ui.assertEq(rows, sees ? 1 : 0, `rows of ${hidden.space} in the space list`);
  if (!sees) ui.assert(!(await page.content()).includes(hidden.space), `the space list never names ${hidden.space}`);

  await ui.open(page, `/_/ui/-/search?q=${encodeURIComponent(hidden.chart)}`);
  const hits = await page.locator(`ol#results li[data-space="${hidden.space}"]`).count();
  ui.assertEq(hits, sees ? 1 : 0, `search hits in ${hidden.space}`);
  if (!sees) {
    ui.assert(!(await page.content()).includes(hidden.space), `search results never name ${hidden.space}`);
    ui.assertEq(Number((await ui.text(page, '#total')).match(/\d+/)[0]), 0, '#total');
  }
  await ui.open(page, `/_/ui/-/search?q=${encodeURIComponent(open.chart)}`);
  await ui.present(page, `ol#results li[data-space="${open.space}"][data-chart="${open.chart}"]`, '(the public chart)');

  const api = await ui.call('GET', `/api/v1/search?q=${encodeURIComponent(hidden.chart)}`, authorization);
  ui.assertEq(api.status, 200, 'API search');
  const spaces = (await api.json()).items.map((i) => i.space);
  ui.assertEq(spaces.includes(hidden.space), sees, `API search hits in ${hidden.space}`);
}

/** Every page of the private space answers `status` (the archive too). */
async function refused(page, status, label) {
  // What is not there is refused alike, so a refusal tells nothing about what exists.
  const missing = [`/_/ui/${hidden.space}/no-such-chart`, `/_/ui/${hidden.space}-nothing`];
  for (const p of [...hiddenPages, ...missing]) {
    await ui.open(page, p, status);
    await ui.present(page, 'main p.error[role=alert]', `on a ${status} page`);
    if (status === 401) await ui.present(page, 'form#signin', 'on a 401 page');
    ui.assert(!ui.norm(await page.locator('body').innerText()).includes(secret), `${p}: no README text on a refused page`);
  }
  const archive = await ui.http(page.context()).get(ui.url(`${hiddenPages[2]}/archive`), { maxRedirects: 0 });
  ui.assertEq(archive.status(), status, `archive of the private chart for ${label}`);
}

async function signIn(page, user, password) {
  await ui.open(page, '/_/ui/-/signin');
  await ui.setField(page, 'form#signin', 'username', user);
  await ui.setField(page, 'form#signin', 'password', password);
  await ui.submit(page, 'form#signin');
  ui.assertEq(await ui.text(page, 'header #whoami'), user, '#whoami');
}

await ui.scenario('privacy', async (browser) => {
  ui.step('anonymous');
  const anonymous = await ui.newContext(browser);
  const a = await anonymous.newPage();
  await listings(a, false);
  await refused(a, 401, 'anonymous');
  await ui.open(a, hiddenPages[0], 401);
  await ui.review(a, 'unauthorized');
  await anonymous.close();

  ui.step(`${OTHER}, signed in without access`);
  const other = await ui.newContext(browser);
  const b = await other.newPage();
  await signIn(b, OTHER, OTHER_PASSWORD);
  await listings(b, false, ui.basic(OTHER, OTHER_PASSWORD));
  await refused(b, 403, OTHER);
  await ui.open(b, hiddenPages[0], 403);
  await ui.review(b, 'forbidden');
  await other.close();

  ui.step(`${READER} signs in from the 401 page and lands on the space`);
  const reader = await ui.newContext(browser);
  const c = await reader.newPage();
  await ui.open(c, hiddenPages[0], 401);
  await ui.setField(c, 'form#signin', 'username', READER);
  await ui.setField(c, 'form#signin', 'password', READER_PASSWORD);
  const signedIn = await ui.submit(c, 'form#signin');
  ui.assertEq(signedIn.status, 200, 'page after signing in');
  ui.assertEq(new URL(c.url()).pathname, hiddenPages[0], 'where signing in from the 401 page leads');
  ui.assertEq(await ui.text(c, 'header #whoami'), READER, '#whoami');
  await ui.present(c, `ul#charts li[data-chart="${hidden.chart}"]`);
  for (const p of hiddenPages) await ui.open(c, p, 200);
  await ui.present(c, 'pre#template');
  await ui.open(c, hiddenPages[2]);
  ui.assertIncludes(ui.norm(await c.locator('#readme').innerText()), secret, `#readme for ${READER}`);
  const archive = await ui.http(reader).get(ui.url(`${hiddenPages[2]}/archive`));
  ui.assertEq(archive.status(), 200, `archive of the private chart for ${READER}`);
  await listings(c, true, ui.basic(READER, READER_PASSWORD));
  await reader.close();
});
