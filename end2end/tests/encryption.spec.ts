import { test, expect } from '@playwright/test';
import * as path from 'path';
import { open, unique, createDatabase, putDocument } from './helpers';

test('an encrypted backup set made and restored with a passphrase from the studio', async ({ page, request }) => {
  const db = unique('Sealed');
  const copy = unique('Unsealed');
  const location = path.join(process.env.ROOKERY_E2E_BACKUPS ?? '/tmp', unique('sealed'));
  await createDatabase(request, db);
  for (let i = 1; i <= 5; i++) await putDocument(request, db, `secrets/${i}`, { Value: `hidden ${i}` });

  await open(page, `/studio/backup?db=${db}`);
  await page.getByLabel('Backup location').fill(location);
  await page.getByLabel('Encryption passphrase').fill('correct horse');
  await page.getByRole('button', { name: 'Start Backup' }).click();
  await expect.poll(async () => (await (await request.get(`/databases/${db}/docs/Raven/Backup/Status`)).json()).Success, { timeout: 20_000 }).toBe(true);
  const manifestSets = await (await request.get(`/admin/backup/sets?location=${encodeURIComponent(location)}`)).json();
  expect(manifestSets.Chains[0].Sets[0].Encrypted).toBe(true);

  // Without the passphrase the server refuses, and the page says why.
  await open(page, `/studio/restore?location=${encodeURIComponent(location)}`);
  await page.getByLabel('Backup location').fill(location);
  await page.getByLabel('Database name').fill(copy);
  await page.getByRole('button', { name: 'Start Restore' }).click();
  await expect(page.getByRole('alert')).toContainText('EncryptionKeyRequired');

  await page.getByLabel('Backup passphrase').fill('correct horse');
  await page.getByRole('button', { name: 'Start Restore' }).click();
  await expect(page.getByRole('link', { name: `Open ${copy}` })).toBeVisible({ timeout: 20_000 });
  const restored = await (await request.get(`/databases/${copy}/docs?startsWith=secrets/`)).json();
  expect(restored.TotalResults).toBe(5);
  expect(restored.Results[0].Document.Value).toBe('hidden 1');
});
