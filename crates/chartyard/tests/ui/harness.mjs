// Checks the harness itself against the running server, so that a passing scenario means
// something: chromium starts, pages of the server load, a request to another host is caught,
// and axe-core does report a serious violation on a page that has one.

import * as ui from './lib.mjs';

await ui.scenario('harness', async (browser) => {
  const context = await ui.newContext(browser);
  const page = await context.newPage();

  ui.step('GET /health and /apidocs.json in the browser');
  await ui.open(page, '/health');
  const response = await ui.open(page, '/apidocs.json');
  const doc = JSON.parse(await response.text());
  ui.assert(doc.paths && (doc.swagger || doc.openapi), '/apidocs.json is an API document');

  ui.step('a request to another host is aborted and recorded');
  const outcome = await page.evaluate(() =>
    fetch('http://example.invalid/x').then(
      () => 'loaded',
      () => 'blocked',
    ),
  );
  ui.assertEq(outcome, 'blocked', 'fetch of a foreign host');
  const caught = ui.takeForeign();
  ui.assert(caught.some((u) => u.startsWith('http://example.invalid/')), `foreign request recorded: ${caught}`);

  ui.step('axe passes a clean page and fails one with an image without alt text');
  await page.setContent('<!doctype html><html lang="en"><head><title>ok</title></head><body><main><h1>ok</h1></main></body></html>');
  await ui.axeCheck(page, 'clean page');
  await page.setContent('<!doctype html><html lang="en"><head><title>bad</title></head><body><main><h1>bad</h1><img src="data:,"></main></body></html>');
  let failed = false;
  try {
    await ui.axeCheck(page, 'page with a bad image');
  } catch (error) {
    failed = error instanceof ui.CheckFailed && /image-alt/.test(error.message);
  }
  ui.assert(failed, 'axe reports the image without alt text as a serious or critical violation');

  ui.step('screenshot');
  await ui.open(page, '/health');
  const file = await ui.shot(page, 'health');
  ui.assert((await import('node:fs')).statSync(file).size > 0, 'screenshot written');
  await context.close();
});
