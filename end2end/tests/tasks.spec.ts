import { test, expect } from '@playwright/test';
import * as path from 'path';
import AxeBuilder from '@axe-core/playwright';
import { open, unique, createDatabase, putDocument } from './helpers';

test('a backup task made in the studio runs on schedule, prunes by its policy, runs now and is deleted', async ({ page, request }) => {
  const db = unique('Tasks');
  await createDatabase(request, db);
  await putDocument(request, db, 'a/1', { A: 1 });
  const location = path.join(process.env.ROOKERY_E2E_BACKUPS ?? '/tmp', unique('tasks'));

  await open(page, `/studio/backup?db=${db}`);
  const section = page.locator('.card').filter({ has: page.getByRole('heading', { name: 'Backup tasks' }) });
  await expect(section).toContainText('No task backs this database up');
  await page.getByLabel('Task name').fill('often');
  await page.getByLabel('Task destination').fill(location);
  // Every two seconds; the form says what that means and when it fires next.
  await page.getByLabel('Full backup schedule').fill('*/2 * * * * *');
  await expect(page.locator('#task-full-meaning')).toContainText('next:');
  await page.getByLabel('Incremental backup schedule').fill('not a schedule');
  await expect(page.locator('#task-incremental-meaning')).toContainText('3 fields');
  await page.getByLabel('Incremental backup schedule').fill('');
  await page.getByLabel('Keep last (sets)').fill('2');
  await page.getByRole('button', { name: 'Save task' }).click();
  await expect(section.getByRole('status')).toContainText("Task 'often' saved.");
  const row = page.getByRole('table', { name: 'Backup tasks' }).getByRole('row').filter({ hasText: 'often' });
  await expect(row).toContainText('full */2 * * * * *');

  // It runs on schedule: the Last run cell names a set.
  await expect.poll(async () => {
    await section.getByRole('button', { name: 'Refresh' }).click();
    return (await row.textContent()) ?? '';
  }, { timeout: 30_000 }).toMatch(/Z-full/);

  // The section with a task in it has no accessibility violation either.
  const axe = await new AxeBuilder({ page }).analyze();
  expect(axe.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);

  // Its retention prunes (KeepLast 2 with one full per chain: older chains go).
  await expect.poll(async () => {
    const r = await request.get(`/databases/${db}/docs/Raven/Backup/Status`);
    return JSON.stringify((await r.json()).Messages ?? []);
  }, { timeout: 30_000 }).toContain("Retention of task 'often': deleted");

  await row.getByRole('button', { name: 'Run now: often' }).click();
  await expect(section.getByRole('status')).toContainText(/started a backup|refused/);

  await row.getByRole('button', { name: 'Delete task often' }).click();
  await row.getByRole('button', { name: 'Confirm delete of task often' }).click();
  await expect(section).toContainText('No task backs this database up');
  const r = await request.get(`/databases/${db}/admin/backup/tasks`);
  expect(await r.json()).toEqual([]);
});

test('a continuous task made in the studio ships changes, and the restore page restores up to a time', async ({ page, request }) => {
  const db = unique('Live');
  await createDatabase(request, db);
  const location = path.join(process.env.ROOKERY_E2E_BACKUPS ?? '/tmp', unique('live'));

  await open(page, `/studio/backup?db=${db}`);
  const section = page.locator('.card').filter({ has: page.getByRole('heading', { name: 'Backup tasks' }) });
  await page.getByLabel('Task name').fill('live');
  await page.getByLabel('Task destination').fill(location);
  await page.getByLabel('Full backup schedule').fill('0 2 * * 0');
  await page.getByLabel('Continuous: most seconds a change waits').fill('1');
  await page.getByLabel('Compact instead of full backups').check();
  await page.getByLabel('Restore drill schedule').fill('* * * * * *');
  await page.getByRole('button', { name: 'Save task' }).click();
  await expect(section.getByRole('status')).toContainText("Task 'live' saved.");
  const row = page.getByRole('table', { name: 'Backup tasks' }).getByRole('row').filter({ hasText: 'live' });
  await expect(row).toContainText('continuous (at most 1 s behind)');
  await expect(row).toContainText('compact 0 2 * * 0');

  // A change is shipped within the lag, with no click.
  const put = await request.put(`/databases/${db}/docs/events/1`, { data: { Kind: 'signup' } });
  const etag = (await put.json()).ETag as number;
  await expect.poll(async () => {
    const task = await (await request.get(`/databases/${db}/admin/backup/tasks/live`)).json();
    return task.Status.LastShippedEtag ?? 0;
  }, { timeout: 20_000 }).toBeGreaterThanOrEqual(etag);
  await section.getByRole('button', { name: 'Refresh' }).click();
  await expect(row).toContainText(`shipped up to etag`);
  // The drill proves the location restorable, every second here.
  await expect.poll(async () => {
    await section.getByRole('button', { name: 'Refresh' }).click();
    return (await row.textContent()) ?? '';
  }, { timeout: 20_000 }).toContain('restorable, proven at');

  // Restore up to a time (after every set: the newest).
  const copy = unique('LiveCopy');
  await open(page, '/studio/restore');
  await page.getByLabel('Backup location').fill(location);
  await page.getByLabel('Or up to a time').fill('2999-01-01T00:00:00Z');
  await page.getByLabel('Database name').fill(copy);
  await page.getByRole('button', { name: 'Start Restore' }).click();
  const panel = page.getByRole('region', { name: 'Restore status' });
  await expect(panel).toContainText(`Restore of ${copy}`);
  await expect(panel).toContainText('Succeeded');
  expect((await request.get(`/databases/${copy}/docs/events/1`)).status()).toBe(200);
  expect((await request.delete(`/databases/${db}/admin/backup/tasks/live`)).status()).toBe(204);
});

test('a task made in the studio with a second destination copies each set there and shows it up to date', async ({ page, request }) => {
  const db = unique('Copies');
  await createDatabase(request, db);
  await putDocument(request, db, 'orders/1', { Total: 1 });
  const root = process.env.ROOKERY_E2E_BACKUPS ?? '/tmp';
  const [local, second] = [path.join(root, unique('local')), path.join(root, unique('second'))];

  await open(page, `/studio/backup?db=${db}`);
  const section = page.locator('.card').filter({ has: page.getByRole('heading', { name: 'Backup tasks' }) });
  await page.getByLabel('Task name').fill('twice');
  await page.getByLabel('Task destination').fill(local);
  await page.getByLabel('Copies to (one location per line)').fill(second);
  await page.getByLabel('Full backup schedule').fill('0 0 1 1 *');
  await page.getByRole('button', { name: 'Save task' }).click();
  await expect(section.getByRole('status')).toContainText("Task 'twice' saved.");
  const row = page.getByRole('table', { name: 'Backup tasks' }).getByRole('row').filter({ hasText: 'twice' });
  await expect(row).toContainText(`copy: ${second}`);
  await expect(row).toContainText('no copy yet');

  await row.getByRole('button', { name: 'Run now: twice' }).click();
  await expect.poll(async () => {
    await section.getByRole('button', { name: 'Refresh' }).click();
    return (await row.textContent()) ?? '';
  }, { timeout: 30_000 }).toContain('up to date');

  // The copy is a set of its own, listed and verified where it was copied.
  const sets = await request.get(`/admin/backup/sets?location=${encodeURIComponent(second)}`);
  const listing = await sets.json();
  expect(listing.Chains[0].Sets.map((s: { Verified: boolean }) => s.Verified)).toEqual([true]);
  const axe = await new AxeBuilder({ page }).analyze();
  expect(axe.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
});
