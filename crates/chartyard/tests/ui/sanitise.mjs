// A chart whose README, Chart.yaml, values.yaml and template carry script: the chart page
// shows the README rendered without any of it, shows the other files as text, and nothing
// runs, even when every link is clicked and every element hovered.

import * as ui from './lib.mjs';

const d = ui.data();
const { chart } = d;
const chartPath = `/_/ui/${chart.space}/${chart.chart}`;

/** Whether a script of the page set the marker. */
async function pwned(page) {
  return page.evaluate(() => typeof window.pwned !== 'undefined');
}

/**
 * What in `root` (a selector) could run script: elements, event attributes, script URLs.
 * Forms count too inside the README (`forms`), not in the page's own markup.
 */
async function dangers(page, root, forms) {
  return page.locator(root).evaluateAll((roots, forms) => {
    const found = [];
    const badTags = new Set(['SCRIPT', 'IFRAME', 'FRAME', 'OBJECT', 'EMBED', 'BASE', 'META', 'LINK']);
    if (forms) badTags.add('FORM');
    const scriptUrl = /^\s*(javascript|vbscript|data\s*:\s*text\/html)\s*:?/i;
    for (const rootElement of roots) {
      for (const element of [rootElement, ...rootElement.querySelectorAll('*')]) {
        const tag = element.tagName.toUpperCase();
        if (badTags.has(tag)) found.push(`<${tag.toLowerCase()}>`);
        for (const attribute of element.attributes) {
          const name = attribute.name.toLowerCase();
          if (name.startsWith('on')) found.push(`${tag.toLowerCase()} ${name}="${attribute.value}"`);
          if (['href', 'src', 'action', 'formaction', 'xlink:href', 'data', 'srcdoc', 'poster', 'background'].includes(name)) {
            if (scriptUrl.test(attribute.value) || name === 'srcdoc') found.push(`${tag.toLowerCase()} ${name}="${attribute.value}"`);
          }
          if (name === 'style' && /javascript:|expression\(/i.test(attribute.value)) found.push(`${tag.toLowerCase()} style="${attribute.value}"`);
        }
      }
    }
    return found;
  }, forms);
}

await ui.scenario('sanitise', async (browser) => {
  const context = await ui.newContext(browser);
  const page = await context.newPage();

  ui.step('the checks catch the attacks on a page that does not sanitise them');
  await page.setContent(
    '<main><div id="readme"><img src="x" onerror="window.pwned=1"><a href="javascript:window.pwned=1">x</a>' +
      '<a href="#" onclick="window.pwned=1">y</a><script>0</script></div></main>',
  );
  await page.waitForFunction(() => typeof window.pwned !== 'undefined');
  const caught = await dangers(page, '#readme', true);
  ui.assertEq(caught.length, 4, `dangers found on the unsanitised page (${caught.join(', ')})`);

  ui.step('open the chart page');
  const response = await ui.open(page, chartPath);
  console.log(`  Content-Security-Policy: ${response.headers()['content-security-policy'] ?? '(none)'}`);
  await page.waitForLoadState('load');
  ui.assert(!(await pwned(page)), 'no script ran on load');

  ui.step('the README is rendered, without anything that runs');
  const readme = ui.norm(await page.locator('#readme').innerText());
  for (const line of d.plain) ui.assertIncludes(readme, line, '#readme keeps the text around the attacks');
  const found = await dangers(page, '#readme', true);
  ui.assert(found.length === 0, `#readme holds what could run script:\n  ${found.join('\n  ')}`);

  ui.step('nothing else on the page runs either');
  const elsewhere = await dangers(page, 'main', false);
  ui.assert(elsewhere.length === 0, `main holds what could run script:\n  ${elsewhere.join('\n  ')}`);
  const scripts = await page.locator('script').evaluateAll((all) => all.map((s) => s.getAttribute('src') ?? `inline: ${s.textContent.slice(0, 80)}`));
  for (const src of scripts) {
    ui.assert(new URL(src, page.url()).pathname.startsWith('/_/ui/-/assets/'), `only the UI's own scripts are on the page: ${src}`);
  }

  ui.step('Chart.yaml, values.yaml and a template show as text');
  ui.assertIncludes(await ui.text(page, '#description'), chart.metadata.description, '#description as text');
  ui.assertEq(await page.locator('#description *').count(), 0, 'elements inside #description');
  const values = (await page.locator('pre#values').textContent()).replace(/^\n/, '');
  ui.assertEq(values.trimEnd(), chart.values.trimEnd(), 'pre#values');

  ui.step('click every link of the README, hover and toggle everything');
  const links = page.locator('#readme a');
  const n = await links.count();
  for (let i = 0; i < n; i++) {
    const link = links.nth(i);
    if (!(await link.isVisible())) continue;
    await link.click({ noWaitAfter: true });
    if (new URL(page.url()).pathname !== chartPath) {
      ui.fail(`clicking README link ${i} (${await link.getAttribute('href')}) left the chart page for ${page.url()}`);
    }
  }
  await page.locator('#readme *').evaluateAll((all) => {
    for (const element of all) {
      for (const type of ['mouseover', 'mouseenter', 'focus', 'toggle', 'load', 'error', 'animationstart']) {
        element.dispatchEvent(new Event(type));
      }
    }
  });
  ui.assert(!(await pwned(page)), 'no script ran after clicking links and hovering');
  await ui.review(page, 'hostile-chart');

  ui.step('the template page shows the template as text');
  await page.locator('ul#templates a').filter({ hasText: d.template.split('/').pop() }).first().click();
  await page.waitForURL((u) => u.pathname.startsWith(`${chartPath}/${chart.version}/templates/`));
  const template = (await page.locator('pre#template').textContent()).replace(/^\n/, '');
  ui.assertEq(template.trimEnd(), chart.templates[d.template].trimEnd(), 'pre#template');
  ui.assert(!(await pwned(page)), 'no script ran on the template page');
  const onTemplate = await dangers(page, 'main', false);
  ui.assert(onTemplate.length === 0, `the template page holds what could run script:\n  ${onTemplate.join('\n  ')}`);
  await context.close();
});
