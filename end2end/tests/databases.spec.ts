import { test, expect } from '@playwright/test';
import { open, unique } from './helpers';

test('create a database, create a document in the UI, see it listed, reload and still see it', async ({ page }) => {
  const db = unique('Shop');
  await open(page, '/studio/databases');
  await page.getByLabel('New database').fill(db);
  await page.getByRole('button', { name: 'Create database' }).click();
  const row = page.getByRole('table', { name: 'Databases' }).getByRole('row').filter({ hasText: db });
  await expect(row).toBeVisible();

  await row.getByRole('link', { name: db }).click();
  await expect(page).toHaveURL(new RegExp(`/studio/documents\\?db=${db}`));
  await hydrated_click_new(page);
  await page.getByLabel('Id').fill('products/1');
  await page.getByLabel('JSON').fill('{"Name": "Kettle", "Price": 25}');
  await page.getByRole('button', { name: 'Save' }).click();
  const list = page.getByRole('list', { name: 'Documents' });
  await expect(list.getByText('products/1')).toBeVisible();

  await page.reload();
  await expect(page.getByRole('list', { name: 'Documents' }).getByText('products/1')).toBeVisible();
  await expect(page.getByLabel('JSON')).toHaveValue(/Kettle/);

  await page.goto('/studio/databases');
  await expect(page.getByRole('table', { name: 'Databases' }).getByRole('row').filter({ hasText: db })).toContainText('1');
});

test('an invalid database name is refused before sending, a taken one by the server', async ({ page }) => {
  await open(page, '/studio/databases');
  await page.getByLabel('New database').fill('.hidden');
  await page.getByRole('button', { name: 'Create database' }).click();
  await expect(page.getByRole('alert')).toContainText('database name');

  const db = unique('Twice');
  await page.getByLabel('New database').fill(db);
  await page.getByRole('button', { name: 'Create database' }).click();
  await expect(page.getByRole('table', { name: 'Databases' })).toContainText(db);
  await page.getByLabel('New database').fill(db);
  await page.getByRole('button', { name: 'Create database' }).click();
  await expect(page.getByRole('alert')).toContainText('DatabaseExists');
});

async function hydrated_click_new(page: import('@playwright/test').Page) {
  await open(page, page.url().replace(/^https?:\/\/[^/]+/, ''));
  await page.getByRole('link', { name: 'New document' }).click();
  await expect(page.getByLabel('Id')).toBeEditable();
}
