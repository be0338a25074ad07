import { test, expect } from '@playwright/test';
import { spawn, ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import AxeBuilder from '@axe-core/playwright';
import { hydrated, stopAndRemove } from './helpers';

// This spec runs its own server whose backups pause at every document (a
// failpoint, compiled into the studio's debug build by `make build`), so a
// backup is still running when the Cancel button is pressed.
const repo = path.resolve(__dirname, '..', '..');
const bin = `${repo}/target/debug/rookery-server`;
const port = 3221;
const base = `http://127.0.0.1:${port}`;
// Made when the spec runs (not when a listing loads it), removed after it.
let root = '';
let server: ChildProcess;

test.beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'rookery-e2e-cancel-'));
  server = spawn(bin, ['--data-dir', path.join(root, 'data'), '--bind', `127.0.0.1:${port}`, '--durability', 'os'], {
    env: { ...process.env, LEPTOS_SITE_ROOT: `${repo}/target/site`, RUST_LOG: 'warn', ROOKERY_FAILPOINTS: 'backup.document=sleep:100' },
    stdio: 'ignore',
  });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  expect((await fetch(`${base}/admin/databases/Slow`, { method: 'PUT' })).status).toBe(201);
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`${base}/databases/Slow/docs/d/${i}`, { method: 'PUT', body: JSON.stringify({ i }) });
    expect(r.status).toBe(201);
  }
});

test.afterAll(async () => {
  await stopAndRemove(server, root);
});

test('Cancel in the status panel stops a running backup, which leaves no set', async ({ page }) => {
  const location = path.join(root, 'backups');
  await page.goto(`${base}/studio/backup?db=Slow`);
  await hydrated(page);
  await page.getByLabel('Backup location').fill(location);
  await page.getByRole('button', { name: 'Start Backup' }).click();
  const panel = page.getByRole('region', { name: 'Backup status' });
  await expect(panel.getByRole('status')).toHaveText('Running');
  // The page with a job running has no accessibility violation either.
  const axe = await new AxeBuilder({ page }).analyze();
  expect(axe.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
  await panel.getByRole('button', { name: 'Cancel the backup' }).click();
  await expect(panel.getByRole('status')).toHaveText('Failed', { timeout: 20_000 });
  await expect(panel).toContainText('Canceled');
  const left = fs.existsSync(location) ? fs.readdirSync(location) : [];
  expect(left).toEqual([]);
});
