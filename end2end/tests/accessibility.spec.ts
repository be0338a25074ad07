import { test, expect, Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import * as path from 'path';
import { open, unique, createDatabase, putDocument } from './helpers';

/** Every violation found, as `page: impact rule: nodes`; checked at the end so one run lists them all. */
const problems: string[] = [];

/** Runs axe-core on the page as it is now. */
async function expectNoViolations(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).analyze();
  for (const v of results.violations) {
    problems.push(`${what}: ${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  }
}

test('every studio page has no axe violations, with jobs finished and failed', async ({ page, request }) => {
  const db = unique('Axe');
  await createDatabase(request, db);
  await putDocument(request, db, 'notes/1', { Text: 'hello' });

  await open(page, '/studio/databases');
  await expect(page.getByRole('table', { name: 'Databases' })).toContainText(db);
  await expectNoViolations(page, 'Databases');

  await open(page, `/studio/documents?db=${db}&id=notes/1`);
  await expect(page.getByLabel('JSON')).toHaveValue(/hello/);
  await expectNoViolations(page, 'Documents');
  await page.getByRole('button', { name: 'Delete' }).click();
  await expect(page.getByRole('group', { name: 'Confirm delete' })).toBeVisible();
  await expectNoViolations(page, 'Documents, confirming a delete');

  // Backup: idle, then a finished job.
  await open(page, `/studio/backup?db=${db}`);
  await expectNoViolations(page, 'Backup, no job yet');
  const location = path.join(process.env.ROOKERY_E2E_BACKUPS ?? '/tmp', unique('axe'));
  await page.getByLabel('Backup location').fill(location);
  await page.getByRole('button', { name: 'Start Backup' }).click();
  await expect(page.getByRole('region', { name: 'Backup status' })).toContainText('Succeeded');
  await expectNoViolations(page, 'Backup, job finished');

  // Restore: a finished job, then a failed one.
  await open(page, '/studio/restore');
  await expectNoViolations(page, 'Restore');
  await page.getByLabel('Backup location').fill(location);
  await page.getByRole('button', { name: 'Find sets' }).click();
  await page.getByLabel('Database name').fill(unique('AxeCopy'));
  await page.getByRole('button', { name: 'Start Restore' }).click();
  await expect(page.getByRole('region', { name: 'Restore status' })).toContainText('Succeeded');
  await expectNoViolations(page, 'Restore, job finished');
  await page.getByLabel('Database name').fill(db);
  await page.getByRole('button', { name: 'Start Restore' }).click();
  await expect(page.getByRole('alert')).toContainText('DatabaseExists');
  await expectNoViolations(page, 'Restore, refused');

  await open(page, `/studio/smuggler?db=${db}`);
  await expectNoViolations(page, 'Import/Export');

  await open(page, '/studio/login');
  await expectNoViolations(page, 'Sign-in');
  expect(problems, problems.join('\n')).toEqual([]);
});
