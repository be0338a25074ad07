import { test, expect, APIRequestContext } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import * as path from 'path';
import { open, unique, createDatabase, putDocument } from './helpers';

async function backup(request: APIRequestContext, db: string, location: string, incremental: boolean) {
  const r = await request.post(`/databases/${db}/admin/backup?incremental=${incremental}&wait=true`, { data: { BackupLocation: location } });
  expect(r.status()).toBe(200);
  return (await r.json()).SetId as string;
}

test('browse Tuesday\'s set, see the overwritten document beside the live one, and restore it', async ({ page, request }) => {
  const root = process.env.ROOKERY_E2E_BACKUPS;
  if (!root) throw new Error('ROOKERY_E2E_BACKUPS is not set (see playwright.config.ts)');
  const db = unique('Shop');
  const location = path.join(root, unique('browse'));
  await createDatabase(request, db);
  for (let i = 1; i <= 30; i++) await putDocument(request, db, `orders/${String(i).padStart(2, '0')}`, { Total: i * 10, Customer: `customers/${i}` });
  const tuesday = await backup(request, db, location, false);
  // Wednesday: someone overwrites an order by mistake.
  await putDocument(request, db, 'orders/07', { Total: 0, Customer: 'customers/7', Note: 'overwritten by mistake' });
  const wednesday = await backup(request, db, location, true);

  // From the history, browse Tuesday's set.
  await open(page, `/studio/backup?db=${db}&location=${encodeURIComponent(location)}`);
  await page.getByRole('table', { name: 'Backup sets' }).getByRole('link', { name: `Browse ${tuesday}` }).click();
  await expect(page.getByRole('heading', { name: 'Browse backup' })).toBeVisible();
  const list = page.getByRole('table', { name: 'Backup documents' });
  await expect(list.getByRole('row')).toHaveCount(26); // a page of 25 and the head
  await page.getByLabel('Id starts with').fill('orders/0');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(list.getByRole('row')).toHaveCount(10);

  // The old version beside the live one, the differing lines marked.
  await list.getByRole('button', { name: 'View orders/07' }).click();
  const compare = page.getByRole('region', { name: 'orders/07 then and now' });
  await expect(compare.getByLabel('Backed-up version')).toContainText('"Total": 70');
  await expect(compare.getByLabel(`Live in ${db}`)).toContainText('overwritten by mistake');
  await expect(compare.locator('.diff-line.changed')).not.toHaveCount(0);

  // Restore it over the live one.
  await list.getByRole('checkbox', { name: 'Select orders/07' }).check();
  const form = page.getByRole('form', { name: 'Restore selected documents' });
  await form.getByLabel('When the database holds the id').selectOption('Overwrite');
  await form.getByRole('button', { name: 'Restore 1 selected' }).click();
  const panel = page.getByRole('region', { name: 'Restore of documents status' });
  await expect(panel).toContainText('Succeeded');
  await expect(panel).toContainText('Restore of documents completed: 1 restored');
  const live = await (await request.get(`/databases/${db}/docs/orders/07`)).json();
  const old = await (await request.get(`/admin/backup/documents/orders/07?location=${encodeURIComponent(location)}&upTo=${tuesday}`)).json();
  expect(live).toEqual(old);
  expect(live).toEqual({ Total: 70, Customer: 'customers/7' });

  const axe = await new AxeBuilder({ page }).analyze();
  expect(axe.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);

  // Compare Wednesday with Tuesday: the one overwritten order.
  await open(page, `/studio/browse?location=${encodeURIComponent(location)}&upTo=${wednesday}&db=${db}`);
  await page.getByLabel('Changes since').selectOption(tuesday);
  const changes = page.getByRole('table', { name: 'Changes' });
  await expect(changes.getByRole('row')).toHaveCount(2);
  await expect(changes).toContainText('orders/07');
  await expect(changes).toContainText('Changed');
  const axeCompare = await new AxeBuilder({ page }).analyze();
  expect(axeCompare.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
});

test('the restore page opens a point in time on the Browse page', async ({ page, request }) => {
  const root = process.env.ROOKERY_E2E_BACKUPS;
  if (!root) throw new Error('ROOKERY_E2E_BACKUPS is not set (see playwright.config.ts)');
  const db = unique('Timed');
  const location = path.join(root, unique('timed'));
  await createDatabase(request, db);
  await putDocument(request, db, 'notes/1', { Text: 'before' });
  await backup(request, db, location, false);
  const between = new Date().toISOString();
  await putDocument(request, db, 'notes/1', { Text: 'after' });
  await putDocument(request, db, 'notes/2', { Text: 'new' });
  await backup(request, db, location, true);

  await open(page, '/studio/restore');
  await page.getByLabel('Backup location').fill(location);
  await page.getByLabel('Or up to a time').fill(between);
  await page.getByRole('link', { name: 'Browse this point' }).click();
  await expect(page.getByRole('heading', { name: 'Browse backup' })).toBeVisible();
  const list = page.getByRole('table', { name: 'Backup documents' });
  await expect(list.getByRole('row')).toHaveCount(2);
  await list.getByRole('button', { name: 'View notes/1' }).click();
  await expect(page.getByLabel('Backed-up version')).toContainText('before');
});
