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
