import { test, expect } from '@playwright/test';
import { open, unique, createDatabase, putDocument } from './helpers';

// The server of this run keeps backups in the bucket rookery-e2e of a real S3
// server (moto) besides folders; see playwright.config.ts.
const bucket = 'rookery-e2e';

test('back up to object storage and restore from it in the studio', async ({ page, request }) => {
  const s3 = process.env.ROOKERY_E2E_S3;
  if (!s3) throw new Error('ROOKERY_E2E_S3 is not set (see playwright.config.ts)');
  // The bucket (moto starts empty); creating it again is harmless.
  const created = await request.put(`${s3}/${bucket}`);
  expect(created.status()).toBe(200);

  const db = unique('Offsite');
  const location = `s3://${bucket}/${db.toLowerCase()}`;
  await createDatabase(request, db);
  await putDocument(request, db, 'users/1', { Name: 'Ada' });
  await putDocument(request, db, 'users/2', { Name: 'Grace' });

  // Back up from the Backup page into the bucket.
  await open(page, `/studio/backup?db=${db}`);
  await expect(page.getByLabel('Database', { exact: true })).toHaveValue(db);
  await page.getByLabel('Backup location').fill(location);
  await page.getByRole('button', { name: 'Start Backup' }).click();
  const panel = page.getByRole('region', { name: 'Backup status' });
  await expect(panel).toContainText('Succeeded');
  await expect(panel).toContainText(location);
  const history = page.getByRole('table', { name: 'Backup sets' });
  await expect(history.getByRole('row')).toHaveCount(2);
  await expect(history.getByRole('row').nth(1)).toContainText('Verified');

  // Restore it from the Restore page under a new name.
  const copy = unique('OffsiteCopy');
  await open(page, '/studio/restore');
  await page.getByLabel('Backup location').fill(location);
  await page.getByRole('button', { name: 'Find sets' }).click();
  await expect(page.getByLabel('Restore up to').locator('option')).toHaveCount(2);
  await page.getByLabel('Database name').fill(copy);
  await page.getByRole('button', { name: 'Start Restore' }).click();
  const restored = page.getByRole('region', { name: 'Restore status' });
  await expect(restored).toContainText(`Restore of ${copy}`);
  await expect(restored).toContainText('Succeeded');
  await expect(restored).toContainText(location);
  const doc = await request.get(`/databases/${copy}/docs/users/2`);
  expect(doc.status()).toBe(200);
  expect(await doc.json()).toEqual({ Name: 'Grace' });

  // A location the studio cannot send is explained before anything is sent.
  await open(page, `/studio/backup?db=${db}`);
  await page.getByLabel('Backup location').fill('s3://');
  await page.getByRole('button', { name: 'Start Backup' }).click();
  await expect(page.getByRole('alert')).toContainText('names no bucket');
});
