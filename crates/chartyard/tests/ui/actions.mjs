// The UI's actions with access control on, as a user does them: a wrong password is refused,
// signing in shows the user; a space is created, charts uploaded (file inputs, with a
// provenance file, and the drop zone), versions and the space deleted; an API token is
// created, shown once, used against the API and revoked; a POST without the CSRF field is
// refused; signing out ends the session. Each step's effect is checked through /api/v1 too.
// (Sessions are signed cookies stored nowhere: signing out clears the cookie; a copy of it
// stays valid until it expires.)

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as ui from './lib.mjs';

const d = ui.data();
const USER = ui.required('UI_USER');
const PASSWORD = ui.required('UI_PASSWORD');
const asUser = ui.basic(USER, PASSWORD);
const { space, tokenSpace, upload, drop } = d;

/** Status of GET /api/v1{p} with the user's password. */
async function apiStatus(p) {
  return (await ui.call('GET', `/api/v1${p}`, asUser)).status;
}

await ui.scenario('actions', async (browser) => {
  const context = await ui.newContext(browser);
  const page = await context.newPage();

  ui.step('signed out: a sign-in link and no actions');
  await page.goto(ui.url('/_/ui/'));
  await ui.present(page, 'header a#signin');
  await ui.absent(page, '#whoami', 'when signed out');
  await ui.absent(page, 'form#create-space', 'when signed out');

  ui.step('a wrong password is refused');
  await page.locator('header a#signin').click();
  await page.waitForURL((u) => u.pathname === '/_/ui/-/signin');
  await ui.review(page, 'signin');
  await ui.setField(page, 'form#signin', 'username', USER);
  await ui.setField(page, 'form#signin', 'password', `${PASSWORD}-wrong`);
  const refused = await ui.submit(page, 'form#signin');
  ui.assert(refused.status >= 400 && refused.status < 500, `sign-in with a wrong password answers 4xx, not ${refused.status}`);
  await ui.present(page, 'main p.error[role=alert]', 'after a wrong password');
  await ui.present(page, 'form#signin', 'to try again');
  await ui.absent(page, '#whoami', 'after a wrong password');
  await ui.review(page, 'signin-error');

  ui.step('the right password signs in');
  await ui.setField(page, 'form#signin', 'username', USER);
  await ui.setField(page, 'form#signin', 'password', PASSWORD);
  const signedIn = await ui.submit(page, 'form#signin');
  ui.assertEq(signedIn.posted, 303, 'sign-in answer');
  ui.assertEq(await ui.text(page, 'header #whoami'), USER, '#whoami');
  await ui.present(page, 'header form#signout');
  await ui.present(page, 'header a#tokens');
  await ui.absent(page, 'header a#signin', 'when signed in');
  const cookie = (await context.cookies()).find((c) => c.name === 'chartyard_session');
  ui.assert(cookie, 'the session cookie is set');
  ui.assert(cookie.httpOnly, 'the session cookie is HttpOnly');
  // Lax or Strict: either keeps other sites from posting with it (the README says Lax).
  ui.assert(['Lax', 'Strict'].includes(cookie.sameSite), `SameSite of the session cookie is Lax or Strict, not ${cookie.sameSite}`);
  ui.assertEq(cookie.path, '/_/ui/', 'Path of the session cookie');

  ui.step('create a space');
  await ui.open(page, '/_/ui/');
  await ui.present(page, 'form#create-space input[type=hidden][name=csrf]');
  await ui.setField(page, 'form#create-space', 'space', space);
  const created = await ui.submit(page, 'form#create-space');
  ui.assertEq(created.posted, 303, 'create-space answer');
  ui.assertEq(new URL(page.url()).pathname, `/_/ui/${space}`, 'page after creating the space');
  ui.assertEq(await apiStatus(`/spaces/${space}/charts`), 200, 'the space exists in the API');

  ui.step('upload a chart and its provenance with the file inputs');
  await ui.present(page, 'form#upload input[type=hidden][name=csrf]');
  await ui.review(page, 'space-signed-in');
  const first = await ui.submitAfter(page, 'form#upload', async () => {
    await page.setInputFiles('form#upload input[name=prov]', upload.prov);
    await page.setInputFiles('form#upload input[name=chart]', upload.file);
  });
  ui.assertEq(first.status(), 200, 'page after the upload');
  ui.assertEq(new URL(page.url()).pathname, `/_/ui/${space}/${upload.chart}/${upload.version}`, 'page after the upload');
  ui.assertEq(await apiStatus(`/spaces/${space}/charts/${upload.chart}/versions/${upload.version}`), 200, 'uploaded version in the API');
  const provHref = await page.locator('a#download-prov').getAttribute('href');
  const prov = await ui.http(context).get(new URL(provHref, page.url()).href);
  ui.assertEq(prov.status(), 200, 'provenance download');
  ui.assertEq(crypto.createHash('sha256').update(await prov.body()).digest('hex'), upload.provSha256, 'sha256 of the downloaded provenance');
  ui.assertIncludes(ui.norm(await ui.text(page, `table#versions tr[data-version="${upload.version}"]`)), 'yes', 'provenance in the versions table');
  await ui.open(page, `/_/ui/${space}`);
  ui.assertEq(await ui.text(page, `ul#charts li[data-chart="${upload.chart}"] .version`), upload.version, 'listed after the upload');

  ui.step('upload another version through the drop zone');
  const bytes = fs.readFileSync(drop.file).toString('base64');
  const dataTransfer = await page.evaluateHandle(
    ({ bytes, name }) => {
      const raw = Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([raw], name, { type: 'application/gzip' }));
      return transfer;
    },
    { bytes, name: path.basename(drop.file) },
  );
  await ui.submitAfter(page, 'form#upload', async () => {
    for (const type of ['dragenter', 'dragover', 'drop']) {
      await page.dispatchEvent('#dropzone', type, { dataTransfer });
    }
  });
  ui.assertEq(new URL(page.url()).pathname, `/_/ui/${space}/${drop.chart}/${drop.version}`, 'page after the drop');
  ui.assertEq(await apiStatus(`/spaces/${space}/charts/${drop.chart}/versions/${drop.version}`), 200, 'dropped version in the API');
  for (const v of [upload.version, drop.version]) await ui.present(page, `table#versions tr[data-version="${v}"]`);

  ui.step('delete both versions');
  await ui.present(page, 'form#delete-version input[type=hidden][name=csrf]');
  await ui.submit(page, 'form#delete-version');
  ui.assertEq(new URL(page.url()).pathname, `/_/ui/${space}/${drop.chart}`, 'page after deleting one of two versions');
  ui.assertEq(await apiStatus(`/spaces/${space}/charts/${drop.chart}/versions/${drop.version}`), 404, 'deleted version');
  await ui.absent(page, `table#versions tr[data-version="${drop.version}"]`, 'after deleting it');
  await ui.open(page, `/_/ui/${space}/${upload.chart}/${upload.version}`);
  await ui.submit(page, 'form#delete-version');
  ui.assertEq(new URL(page.url()).pathname, `/_/ui/${space}`, 'page after deleting the last version');
  ui.assertEq(await page.locator('ul#charts li[data-chart]').count(), 0, 'charts left in the space');

  ui.step('delete the space');
  await ui.submit(page, 'form#delete-space');
  ui.assertEq(new URL(page.url()).pathname, '/_/ui/', 'page after deleting the space');
  await ui.absent(page, `table#spaces tr[data-space="${space}"]`, 'after deleting it');
  ui.assertEq(await apiStatus(`/spaces/${space}/charts`), 404, 'the deleted space in the API');

  ui.step('create an API token: shown once');
  await page.locator('header a#tokens').click();
  await page.waitForURL((u) => u.pathname === '/_/ui/-/tokens');
  await ui.setField(page, 'form#create-token', 'spaces', `${USER}-*`);
  await ui.setField(page, 'form#create-token', 'role', 'admin');
  await ui.setField(page, 'form#create-token', 'expires', '1d');
  const made = await ui.submit(page, 'form#create-token');
  ui.assertEq(made.status, 200, 'token creation answer');
  const token = await ui.text(page, 'code#new-token');
  ui.assert(/^cyt_[0-9a-f]+_\S+$/.test(token), `code#new-token holds a token: ${token}`);
  const rows = page.locator('table#tokens tr[data-token]');
  ui.assertEq(await rows.count(), 1, 'tokens listed');
  const id = await rows.first().getAttribute('data-token');
  ui.assert(token.startsWith(`cyt_${id}_`), `the token ${token.slice(0, 12)}… has the listed id ${id}`);
  await ui.review(page, 'tokens-created');
  await ui.open(page, '/_/ui/-/tokens');
  await ui.absent(page, 'code#new-token', 'when the page is opened again');
  ui.assert(!(await page.content()).includes(token), 'the token is not shown again');

  ui.step('the token works against the API');
  const bearer = `Bearer ${token}`;
  const who = await ui.call('GET', '/_/whoami', bearer);
  ui.assertEq(who.status, 200, 'whoami with the token');
  ui.assertEq((await who.json()).user, USER, 'whoami with the token');
  const made2 = await ui.call('POST', `/api/v1/spaces?space=${tokenSpace}`, bearer);
  ui.assertEq(made2.status, 201, `creating ${tokenSpace} with the token`);

  ui.step('revoke it');
  await ui.submit(page, `table#tokens tr[data-token="${id}"] form.revoke`);
  ui.assertEq(new URL(page.url()).pathname, '/_/ui/-/tokens', 'page after revoking');
  await ui.absent(page, `table#tokens tr[data-token="${id}"]`, 'after revoking it');
  ui.assertEq((await ui.call('GET', '/_/whoami', bearer)).status, 401, 'whoami with the revoked token');
  ui.assertEq((await ui.call('DELETE', `/api/v1/spaces/${tokenSpace}`, bearer)).status, 401, 'the revoked token deletes nothing');

  ui.step('a POST without the csrf field, or with a wrong one, is refused');
  const request = ui.http(context);
  for (const form of [{ space: `${USER}-csrf` }, { space: `${USER}-csrf`, csrf: 'not-the-token' }]) {
    const answer = await request.post(ui.url('/_/ui/-/spaces'), { form, maxRedirects: 0 });
    ui.assert(answer.status() >= 400 && answer.status() < 500, `POST ${JSON.stringify(form)} answers 4xx, not ${answer.status()}`);
  }
  ui.assertEq(await apiStatus(`/spaces/${USER}-csrf/charts`), 404, 'no space was created without the csrf field');
  // The same request with the page's csrf value goes through: the session was sent.
  await ui.open(page, '/_/ui/');
  const csrf = await page.locator('form#create-space input[name=csrf]').getAttribute('value');
  const good = await request.post(ui.url('/_/ui/-/spaces'), { form: { space: `${USER}-csrf`, csrf }, maxRedirects: 0 });
  ui.assertEq(good.status(), 303, 'the same POST with the csrf field');
  ui.assertEq(await apiStatus(`/spaces/${USER}-csrf/charts`), 200, 'created with the csrf field');

  ui.step('sign out');
  await ui.submit(page, 'form#signout');
  ui.assertEq(new URL(page.url()).pathname, '/_/ui/', 'page after signing out');
  await ui.present(page, 'header a#signin', 'after signing out');
  await ui.absent(page, '#whoami', 'after signing out');
  await page.goto(ui.url('/_/ui/-/tokens'));
  await ui.present(page, 'form#signin', 'on the tokens page when signed out');

  await context.close();
});
