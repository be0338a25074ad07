import { test, expect, APIRequestContext } from '@playwright/test';
import * as path from 'path';
import { open, unique, createDatabase, putDocument } from './helpers';

async function backup(request: APIRequestContext, db: string, location: string, incremental: boolean) {
  const r = await request.post(`/databases/${db}/admin/backup?incremental=${incremental}`, { data: { BackupLocation: location } });
  expect(r.status()).toBe(202);
  await expect
    .poll(async () => (await (await request.get(`/databases/${db}/docs/Raven/Backup/Status`)).json()).IsRunning)
    .toBe(false);
  return (await (await request.get(`/databases/${db}/docs/Raven/Backup/Status`)).json()).SetId as string;
}

test('compact a chain from the backup history', async ({ page, request }) => {
  const root = process.env.ROOKERY_E2E_BACKUPS;
  if (!root) throw new Error('ROOKERY_E2E_BACKUPS is not set (see playwright.config.ts)');
  const db = unique('Folded');
  const location = path.join(root, unique('folded'));
  await createDatabase(request, db);
  await putDocument(request, db, 'users/1', { Name: 'Ada' });
  await backup(request, db, location, false);
  await putDocument(request, db, 'users/2', { Name: 'Grace' });
  const incremental = await backup(request, db, location, true);

  await open(page, `/studio/backup?db=${db}&location=${encodeURIComponent(location)}`);
  const history = page.getByRole('table', { name: 'Backup sets' });
  await expect(history.getByRole('row')).toHaveCount(3);
  await history.getByRole('button', { name: `Compact up to ${incremental}` }).click();
  const panel = page.getByRole('region', { name: 'Compaction status' });
  await expect(panel).toContainText('Succeeded');
  await expect(panel).toContainText('Compaction completed');
  await expect(history.getByRole('row')).toHaveCount(4);
  const newest = history.getByRole('row').nth(1);
  await expect(newest).toContainText('Full');
  await expect(newest).toContainText('Verified');

  // The compacted set restores to the database as it was at the incremental.
  const setId = (await (await request.get('/docs/Raven/Compact/Status')).json()).SetId as string;
  const copy = unique('FoldedCopy');
  const r = await request.post('/admin/restore', { data: { BackupLocation: location, DatabaseName: copy, RestoreUpTo: setId } });
  expect(r.status()).toBe(202);
  await expect.poll(async () => (await request.get(`/databases/${copy}/docs/users/2`)).status()).toBe(200);
});
