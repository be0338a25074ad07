import { test, expect } from '@playwright/test';
import { open, unique, createDatabase, putDocument } from './helpers';

test('export a database from the studio and import the file into another one', async ({ page, request }) => {
  const source = unique('Export');
  const target = unique('Import');
  await createDatabase(request, source);
  await createDatabase(request, target);
  for (let i = 1; i <= 12; i++) {
    await putDocument(request, source, `products/${i}`, { Name: `Product ${i}`, Price: i * 3 });
  }
  await putDocument(request, target, 'products/1', { Name: 'Kept, not overwritten' });

  await open(page, `/studio/smuggler?db=${source}`);
  const downloadEvent = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download export' }).click();
  const download = await downloadEvent;
  expect(download.suggestedFilename()).toMatch(/\.rookerydump$/);
  const file = await download.path();

  await open(page, `/studio/smuggler?db=${target}`);
  await page.getByLabel('Dump file').setInputFiles(file);
  await page.getByRole('button', { name: 'Import' }).click();
  const panel = page.getByRole('region', { name: 'Import status' });
  await expect(panel).toContainText('Succeeded');
  await expect(panel).toContainText('11 documents written, 1 skipped');

  const r = await request.get(`/databases/${target}/docs?startsWith=products/&pageSize=100`);
  const page1 = await r.json();
  expect(page1.TotalResults).toBe(12);
  const kept = await (await request.get(`/databases/${target}/docs/products/1`)).json();
  expect(kept.Name).toBe('Kept, not overwritten');
});

test('a file that is not a dump is refused with the line it failed on', async ({ page, request }) => {
  const target = unique('Bad');
  await createDatabase(request, target);
  await open(page, `/studio/smuggler?db=${target}`);
  await page.getByLabel('Dump file').setInputFiles({ name: 'broken.rookerydump', mimeType: 'application/octet-stream', buffer: Buffer.from('not json at all\n') });
  await page.getByRole('button', { name: 'Import' }).click();
  await expect(page.getByRole('alert')).toContainText('line 1');
  await expect(page.getByRole('alert')).toContainText('InvalidDump');
});
