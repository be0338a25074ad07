import { test, expect, Page, APIRequestContext } from '@playwright/test';
import * as path from 'path';
import { open, unique, createDatabase, putDocument } from './helpers';

/** A fresh backup location under the run's temporary backup folder. */
function backupLocation(name: string) {
  const root = process.env.ROOKERY_E2E_BACKUPS;
  if (!root) throw new Error('ROOKERY_E2E_BACKUPS is not set (see playwright.config.ts)');
  return path.join(root, unique(name));
}

/** Every document of a database, without the status documents (`Raven/...`). */
async function userDocuments(request: APIRequestContext, db: string) {
  const r = await request.get(`/databases/${db}/docs?pageSize=1024`);
  expect(r.status()).toBe(200);
  const body = await r.json();
  const docs: Record<string, unknown> = {};
  for (const d of body.Results) {
    if (!d.Id.startsWith('Raven/')) docs[d.Id] = d.Document;
  }
  return { total: body.TotalResults as number, docs };
}

async function backupStatus(request: APIRequestContext, db: string) {
  const r = await request.get(`/databases/${db}/docs/Raven/Backup/Status`);
  return r.status() === 200 ? await r.json() : null;
}

/** Runs a backup from the Backup page and waits until the panel shows the new job's success. */
async function backupFromPage(page: Page, request: APIRequestContext, db: string, location: string, incremental: boolean) {
  const before = (await backupStatus(request, db))?.SetId ?? null;
  await open(page, `/studio/backup?db=${db}`);
  await expect(page.getByLabel('Database', { exact: true })).toHaveValue(db);
  await page.getByLabel('Backup location').fill(location);
  await page.getByLabel('Incremental', { exact: true }).setChecked(incremental);
  await page.getByRole('button', { name: 'Start Backup' }).click();

  // The status document names the new set at once (202 comes after it is written).
  let setId = '';
  await expect.poll(async () => (setId = (await backupStatus(request, db))?.SetId ?? '')).not.toBe(before ?? '');
  const panel = page.getByRole('region', { name: 'Backup status' });
  await expect(panel).toContainText(setId);
  await expect(panel).toContainText('Succeeded');
  await expect(panel).toContainText(incremental ? 'Incremental backup' : 'Full backup');
  await expect(panel.getByRole('progressbar')).toHaveAttribute('aria-valuenow', '100');
  await expect(panel).toContainText('100.0%');
  await expect(page.getByRole('button', { name: 'Start Backup' })).toBeEnabled();
  return { setId, panel };
}

/** Restores from the Restore page and waits for the panel to show the new database restored. */
async function restoreFromPage(page: Page, location: string, name: string, upTo: string | null) {
  await open(page, '/studio/restore');
  await page.getByLabel('Backup location').fill(location);
  await page.getByRole('button', { name: 'Find sets' }).click();
  const upToSelect = page.getByLabel('Restore up to');
  await expect(upToSelect.locator('option')).toHaveCount(3); // Newest set + the full + the incremental
  await expect(upToSelect).toHaveValue('');
  if (upTo) await upToSelect.selectOption(upTo);
  await page.getByLabel('Database name').fill(name);
  await page.getByRole('button', { name: 'Start Restore' }).click();
  const panel = page.getByRole('region', { name: 'Restore status' });
  await expect(panel).toContainText(`Restore of ${name}`);
  await expect(panel).toContainText('Succeeded');
  return panel;
}

test('back up from the studio, full then incremental, and restore both points in time', async ({ page, request }) => {
  const db = unique('Shop');
  const location = backupLocation('shop');
  await createDatabase(request, db);
  await putDocument(request, db, 'users/1', { Name: 'Ada' });
  await putDocument(request, db, 'users/2', { Name: 'Grace' });
  await putDocument(request, db, 'users/3', { Name: 'Barbara' });
  await putDocument(request, db, 'orders/1', { Total: 10 });
  await putDocument(request, db, 'orders/2', { Total: 20 });
  const atFull = (await userDocuments(request, db)).docs;
  expect(Object.keys(atFull)).toHaveLength(5);

  // 1. A full backup, watched in the status panel, then listed in the history.
  const full = await backupFromPage(page, request, db, location, false);
  await expect(full.panel).toContainText('5 of 5 documents');
  const history = page.getByRole('table', { name: 'Backup sets' });
  await expect(history.getByRole('row')).toHaveCount(2);
  await expect(history.getByRole('row').nth(1)).toContainText(full.setId);
  await expect(history.getByRole('row').nth(1)).toContainText('Full');
  await expect(history.getByRole('row').nth(1)).toContainText('Verified');

  // A reload renders the last job on the server already.
  const html = await (await request.get(`/studio/backup?db=${db}`)).text();
  expect(html).toContain(full.setId);
  expect(html).toContain('Succeeded');

  // 2. Change, delete and add documents; an incremental backup from the page.
  await putDocument(request, db, 'users/1', { Name: 'Ada Lovelace' });
  expect((await request.delete(`/databases/${db}/docs/orders/1`)).status()).toBe(204);
  await putDocument(request, db, 'users/4', { Name: 'Margaret' });
  const atIncremental = (await userDocuments(request, db)).docs;
  expect(Object.keys(atIncremental).sort()).toEqual(['orders/2', 'users/1', 'users/2', 'users/3', 'users/4']);

  const inc = await backupFromPage(page, request, db, location, true);
  await expect(history.getByRole('row')).toHaveCount(3);
  const newest = history.getByRole('row').nth(1);
  await expect(newest).toContainText(inc.setId);
  await expect(newest).toContainText('Incremental');
  await expect(newest).toContainText('Verified');
  await expect(newest.getByRole('cell').nth(5)).toHaveText('1'); // one deletion
  await expect(history.getByRole('row').nth(2)).toContainText(full.setId);

  // 3. Restore the newest point in time under a new name, open it from the panel.
  const latest = unique('ShopLatest');
  const latestPanel = await restoreFromPage(page, location, latest, null);
  await expect(latestPanel).toContainText(inc.setId);
  await latestPanel.getByRole('link', { name: `Open ${latest}` }).click();
  await expect(page).toHaveURL(new RegExp(`/studio/documents\\?db=${latest}`));
  await expect(page.getByText('1–5 of 5')).toBeVisible();
  const latestList = page.getByRole('list', { name: 'Documents' });
  for (const id of Object.keys(atIncremental)) await expect(latestList.getByText(id, { exact: true })).toBeVisible();
  await expect(latestList.getByText('orders/1', { exact: true })).toHaveCount(0);
  const restoredLatest = await userDocuments(request, latest);
  expect(restoredLatest.total).toBe(5);
  expect(restoredLatest.docs).toEqual(atIncremental);

  // 4. Restore up to the first (full) set: the database as it was before the changes.
  const first = unique('ShopFirst');
  const firstPanel = await restoreFromPage(page, location, first, full.setId);
  await expect(firstPanel).toContainText(full.setId);
  await open(page, `/studio/documents?db=${first}`);
  await expect(page.getByText('1–5 of 5')).toBeVisible();
  const restoredFirst = await userDocuments(request, first);
  expect(restoredFirst.total).toBe(5);
  expect(restoredFirst.docs).toEqual(atFull);
  expect(restoredFirst.docs['users/1']).toEqual({ Name: 'Ada' });

  // 5. A name that is taken is refused, with the server's code.
  await open(page, `/studio/restore`);
  await page.getByLabel('Backup location').fill(location);
  await page.getByLabel('Database name').fill(latest);
  await page.getByRole('button', { name: 'Start Restore' }).click();
  await expect(page.getByRole('alert')).toContainText('DatabaseExists');
  await expect(page.getByRole('alert')).toContainText(latest);
  // The refused restore did not replace the last job in the panel.
  await expect(page.getByRole('region', { name: 'Restore status' })).toContainText(`Restore of ${first}`);
});

test('the backup form refuses a missing or relative location before sending, and shows the server refusal', async ({ page, request }) => {
  const db = unique('Refusals');
  await createDatabase(request, db);
  await putDocument(request, db, 'items/1', { N: 1 });
  await open(page, `/studio/backup?db=${db}`);
  await expect(page.getByRole('region', { name: 'Backup status' })).toContainText('No backup has run on this database yet.');

  await page.getByRole('button', { name: 'Start Backup' }).click();
  await expect(page.getByRole('alert')).toContainText('Enter a backup location');

  await page.getByLabel('Backup location').fill('backups/relative');
  await page.getByRole('button', { name: 'Start Backup' }).click();
  await expect(page.getByRole('alert')).toContainText('relative');
  await expect(page.getByRole('alert')).toContainText('backups/relative');

  // Absolute but refused by the server (a filesystem root): its message and code are shown.
  await page.getByLabel('Backup location').fill('/');
  await page.getByRole('button', { name: 'Start Backup' }).click();
  await expect(page.getByRole('alert')).toContainText('InvalidBackupLocation');

  // Nothing ran.
  expect(await backupStatus(request, db)).toBeNull();
  await expect(page.getByRole('region', { name: 'Backup status' })).toContainText('No backup has run on this database yet.');

  // An incremental into another database's chain is refused with ChainMismatch.
  const other = unique('Other');
  const location = backupLocation('mismatch');
  await createDatabase(request, other);
  expect((await request.post(`/databases/${other}/admin/backup`, { data: { BackupLocation: location } })).status()).toBe(202);
  await expect.poll(async () => (await backupStatus(request, other))?.IsRunning).toBe(false);
  await page.getByRole('button', { name: 'Dismiss' }).click();
  await expect(page.getByRole('alert')).toHaveCount(0);
  await page.getByLabel('Backup location').fill(location);
  await page.getByLabel('Incremental', { exact: true }).check();
  await page.getByRole('button', { name: 'Start Backup' }).click();
  await expect(page.getByRole('alert')).toContainText('ChainMismatch');
});

test('the restore form lists nothing for an empty location and refuses a relative one', async ({ page }) => {
  await open(page, '/studio/restore');
  await page.getByLabel('Backup location').fill('relative/folder');
  await page.getByRole('button', { name: 'Find sets' }).click();
  await expect(page.getByRole('alert')).toContainText('relative');

  const empty = backupLocation('empty');
  await page.getByLabel('Backup location').fill(empty);
  await page.getByRole('button', { name: 'Find sets' }).click();
  await expect(page.getByText('No backup set found in that location.')).toBeVisible();
  await expect(page.getByLabel('Restore up to').locator('option')).toHaveCount(1);

  await page.getByRole('button', { name: 'Start Restore' }).click();
  await expect(page.getByRole('alert')).toContainText(/NoBackupFound|InvalidBackupLocation/);
});

test('a snapshot from the studio: Backup type Snapshot, its kind in the history, and a restore', async ({ page, request }) => {
  const db = unique('Snap');
  const location = backupLocation('snap');
  await createDatabase(request, db);
  await putDocument(request, db, 'users/1', { Name: 'Ada' });
  await putDocument(request, db, 'users/2', { Name: 'Grace' });
  const before = (await userDocuments(request, db)).docs;

  await open(page, `/studio/backup?db=${db}`);
  await expect(page.getByLabel('Database', { exact: true })).toHaveValue(db);
  await page.getByLabel('Backup location').fill(location);
  const type = page.getByLabel('Backup type');
  await expect(type).toHaveValue('Backup');
  await expect(type.locator('option')).toHaveText(['Backup', 'Snapshot']);
  await type.selectOption('Snapshot');
  await page.getByRole('button', { name: 'Start Backup' }).click();
  let setId = '';
  await expect.poll(async () => (setId = (await backupStatus(request, db))?.SetId ?? '')).toMatch(/-snapshot$/);
  const panel = page.getByRole('region', { name: 'Backup status' });
  await expect(panel).toContainText('Succeeded');
  const history = page.getByRole('table', { name: 'Backup sets' });
  await expect(history.getByRole('row')).toHaveCount(2);
  await expect(history.getByRole('row').nth(1)).toContainText(setId);
  await expect(history.getByRole('row').nth(1)).toContainText('Snapshot');
  await expect(history.getByRole('row').nth(1)).toContainText('Verified');

  await open(page, '/studio/restore');
  await page.getByLabel('Backup location').fill(location);
  await page.getByRole('button', { name: 'Find sets' }).click();
  await expect(page.getByLabel('Restore up to').locator('option')).toHaveCount(2);
  const copy = unique('SnapCopy');
  await page.getByLabel('Database name').fill(copy);
  await page.getByRole('button', { name: 'Start Restore' }).click();
  const restorePanel = page.getByRole('region', { name: 'Restore status' });
  await expect(restorePanel).toContainText(`Restore of ${copy}`);
  await expect(restorePanel).toContainText('Succeeded');
  expect((await userDocuments(request, copy)).docs).toEqual(before);
});

test('a location holding two databases asks which one to restore, and restores the one chosen', async ({ page, request }) => {
  const location = backupLocation('shared');
  const [first, second] = [unique('First'), unique('Second')];
  for (const db of [first, second]) {
    await createDatabase(request, db);
    await putDocument(request, db, 'whose/1', { Db: db });
    const r = await request.post(`/databases/${db}/admin/backup?wait=true`, { data: { BackupLocation: location } });
    expect(r.status()).toBe(200);
  }
  await open(page, '/studio/restore');
  await page.getByLabel('Backup location').fill(location);
  await page.getByRole('button', { name: 'Find sets' }).click();
  const which = page.getByLabel('Database in the backup');
  await expect(which.locator('option')).toHaveCount(3);
  const copy = unique('Chosen');
  await page.getByLabel('Database name').fill(copy);
  // Without a choice the server says the location is ambiguous.
  await page.getByRole('button', { name: 'Start Restore' }).click();
  await expect(page.getByRole('alert')).toContainText('AmbiguousBackup');
  await which.selectOption(second);
  await page.getByRole('button', { name: 'Start Restore' }).click();
  const restored = page.getByRole('region', { name: 'Restore status' });
  await expect(restored).toContainText(`Restore of ${copy}`);
  await expect(restored).toContainText('Succeeded');
  const doc = await request.get(`/databases/${copy}/docs/whose/1`);
  expect(await doc.json()).toEqual({ Db: second });
});
