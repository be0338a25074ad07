import { test, expect } from '@playwright/test';
import { createDatabase, open, putDocument, unique } from './helpers';

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
  // The Documents cell of this database's row says 1 (not any "1" in the row).
  const cells = page.getByRole('table', { name: 'Databases' }).getByRole('row').filter({ hasText: db }).getByRole('cell');
  await expect(cells.nth(1)).toHaveText('1');
});

test('the editor saves with If-Match: a change made meanwhile is a conflict, not overwritten', async ({ page, request }) => {
  const db = unique('Edit');
  await createDatabase(request, db);
  await putDocument(request, db, 'notes/1', { Text: 'first' });
  await open(page, `/studio/documents?db=${db}&id=notes/1`);
  await expect(page.getByLabel('JSON')).toHaveValue(/first/);
  // Someone else changes it after the page opened it.
  await putDocument(request, db, 'notes/1', { Text: 'theirs' });
  await page.getByLabel('JSON').fill('{"Text": "mine"}');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('alert')).toContainText('changed by someone else');
  const stored = await (await request.get(`/databases/${db}/docs/notes/1`)).json();
  expect(stored).toEqual({ Text: 'theirs' });
  // After a reload the edit goes through.
  await open(page, `/studio/documents?db=${db}&id=notes/1`);
  await expect(page.getByLabel('JSON')).toHaveValue(/theirs/);
  await page.getByLabel('JSON').fill('{"Text": "mine"}');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Saved' })).toBeVisible();
  expect(await (await request.get(`/databases/${db}/docs/notes/1`)).json()).toEqual({ Text: 'mine' });
});

test('New document refuses an id that exists, and Delete asks first', async ({ page, request }) => {
  const db = unique('Keep');
  await createDatabase(request, db);
  await putDocument(request, db, 'orders/1', { Total: 42 });
  await open(page, `/studio/documents?db=${db}&new=1`);
  await page.getByLabel('Id').fill('orders/1');
  await page.getByLabel('JSON').fill('{"Total": 0}');
  await page.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('alert')).toContainText('already exists');
  expect(await (await request.get(`/databases/${db}/docs/orders/1`)).json()).toEqual({ Total: 42 });

  await open(page, `/studio/documents?db=${db}&id=orders/1`);
  await page.getByRole('button', { name: 'Delete' }).click();
  const confirm = page.getByRole('group', { name: 'Confirm delete' });
  await expect(confirm).toContainText("Delete 'orders/1'?");
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  expect((await request.get(`/databases/${db}/docs/orders/1`)).status()).toBe(200);
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('button', { name: 'Yes, delete' }).click();
  await expect.poll(async () => (await request.get(`/databases/${db}/docs/orders/1`)).status()).toBe(404);
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

test('a database is deleted from its row, after the row asks', async ({ page, request }) => {
  const db = unique('Gone');
  await createDatabase(request, db);
  await open(page, '/studio/databases');
  const row = page.getByRole('table', { name: 'Databases' }).getByRole('row').filter({ hasText: db });
  await row.getByRole('button', { name: `Delete database ${db}` }).click();
  await row.getByRole('button', { name: 'Cancel' }).click();
  expect((await request.get(`/databases/${db}/docs`)).status()).toBe(200);
  await row.getByRole('button', { name: `Delete database ${db}` }).click();
  await row.getByRole('button', { name: `Confirm delete of database ${db}` }).click();
  await expect(page.getByRole('table', { name: 'Databases' })).not.toContainText(db);
  expect((await request.get(`/databases/${db}/docs`)).status()).toBe(404);
});
