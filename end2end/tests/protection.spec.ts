import { test, expect } from '@playwright/test';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import AxeBuilder from '@axe-core/playwright';
import { open, unique, createDatabase, putDocument } from './helpers';

test('the front page turns a failing task red, and green again once it backs up', async ({ page, request }) => {
  const db = unique('Guarded');
  await createDatabase(request, db);
  await putDocument(request, db, 'orders/1', { Total: 1 });
  const location = path.join(process.env.ROOKERY_E2E_BACKUPS ?? '/tmp', unique('guarded'));
  const task = { BackupLocation: location, FullBackupFrequency: '0 2 * * *' };
  expect((await request.put(`/databases/${db}/admin/backup/tasks/nightly`, { data: task })).status()).toBe(201);
  // A file where the task's folder should be: its run fails.
  fs.writeFileSync(location, 'not a folder');
  const failed = await request.post(`/databases/${db}/admin/backup/tasks/nightly/run?wait=true`, { data: {} });
  expect(failed.status()).toBe(400);

  await open(page, '/studio');
  await expect(page.getByRole('heading', { name: 'Protection' })).toBeVisible();
  const table = page.getByRole('table', { name: 'Protection' });
  const row = table.getByRole('row').filter({ has: page.getByRole('rowheader', { name: db, exact: true }) });
  await expect(row).toHaveAttribute('data-state', 'Failed');
  await expect(row.locator('.tag.err').first()).toHaveText('Failed');
  await expect(row).toContainText('nightly');
  await expect(table.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'System', exact: true }) })).toContainText('Unprotected');
  const axe = await new AxeBuilder({ page }).analyze();
  expect(axe.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);

  // The operator fixes the destination; the next run succeeds and the row turns green.
  fs.rmSync(location);
  const ran = await request.post(`/databases/${db}/admin/backup/tasks/nightly/run?wait=true`, { data: {} });
  expect(ran.status()).toBe(200);
  await open(page, '/studio/protection');
  await expect(row).toHaveAttribute('data-state', 'Ok');
  await expect(row.locator('.tag.ok').first()).toHaveText('Ok');
  await expect(row).toContainText('Up to date');
  // The chart of its sets is drawn, with its sizes said in words.
  await expect(row.getByRole('img')).toHaveAttribute('aria-label', new RegExp(`${db}: 1 set, sizes up to`));
});

test('a notification made on the Backup page is sent a test and deleted', async ({ page }) => {
  const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
  const port = (receiver.address() as { port: number }).port;
  const name = unique('ops');
  try {
    await open(page, '/studio/backup');
    const section = page.getByRole('region', { name: 'Notifications' });
    await section.getByLabel('Name').fill(name);
    await section.getByLabel('Webhook URL').fill(`http://127.0.0.1:${port}/hook`);
    await section.getByLabel('Secret (signs each body; 16 characters or more)').fill('a-secret-of-twenty-chars');
    await section.getByLabel('DrillFailed').check();
    await section.getByRole('button', { name: 'Save notification' }).click();
    await expect(section.getByRole('status')).toContainText(`Notification '${name}' saved.`);
    const row = section.getByRole('table', { name: 'Notifications' }).getByRole('row').filter({ hasText: name });
    await expect(row).toContainText('BackupFailed, BackupRecovered, BackupStale, DrillFailed');
    await expect(row).toContainText('(signed)');
    const axe = await new AxeBuilder({ page }).analyze();
    expect(axe.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);

    await row.getByRole('button', { name: `Send test to ${name}` }).click();
    await expect(section.getByRole('status')).toContainText('the receiver answered 204');
    expect(received).toHaveLength(1);
    expect(received[0].headers['x-rookery-event']).toBe('Test');
    expect(received[0].headers['x-rookery-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(JSON.parse(received[0].body).Event).toBe('Test');
    await expect(row).toContainText('Delivered');

    await row.getByRole('button', { name: `Delete notification ${name}` }).click();
    await row.getByRole('button', { name: `Confirm delete of notification ${name}` }).click();
    await expect(section.getByRole('status')).toContainText(`Notification '${name}' deleted.`);
  } finally {
    receiver.close();
  }
});
