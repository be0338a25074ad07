import { test, expect, Page } from '@playwright/test';
import { spawn, execFileSync, ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { stopAndRemove } from './helpers';

// This spec runs its own server: it creates users, which turns development
// mode off, and the other specs rely on the shared server staying open.
const repo = path.resolve(__dirname, '..', '..');
const bin = `${repo}/target/debug/rookery-server`;
const port = 3219;
const base = `http://127.0.0.1:${port}`;
// Made when the spec runs (not when a listing loads it), removed after it.
let root = '';
let server: ChildProcess;

const basic = (u: string, p: string) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');

test.beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'rookery-e2e-auth-'));
  const dataDir = path.join(root, 'data');
  execFileSync(bin, ['--data-dir', dataDir, '--create-admin=admin'], { env: { ...process.env, ROOKERY_PASSWORD: 'admin-pw' } });
  server = spawn(bin, ['--data-dir', dataDir, '--bind', `127.0.0.1:${port}`, '--durability', 'os'], {
    env: { ...process.env, LEPTOS_SITE_ROOT: `${repo}/target/site`, RUST_LOG: 'warn' },
    stdio: 'ignore',
  });
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`${base}/health`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  const admin = { Authorization: basic('admin', 'admin-pw') };
  const user = await fetch(`${base}/admin/users/viewer`, {
    method: 'PUT', headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ Password: 'viewer-pw', Role: 'ReadOnly' }),
  });
  expect(user.status).toBe(201);
  expect((await fetch(`${base}/admin/databases/Secure`, { method: 'PUT', headers: admin })).status).toBe(201);
  expect((await fetch(`${base}/databases/Secure/docs/a/1`, {
    method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: '{"Secret": 1}',
  })).status).toBe(201);
});

test.afterAll(async () => {
  await stopAndRemove(server, root);
});

async function signIn(page: Page, user: string, password: string) {
  await page.goto(`${base}/studio/login`);
  await page.waitForFunction(() => (window as any).__rookeryHydrated === true);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/studio\/databases/);
}

test('signed out, the studio asks to sign in; a wrong password is refused', async ({ page }) => {
  await page.goto(`${base}/studio/databases`);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await page.goto(`${base}/studio/login`);
  await page.waitForFunction(() => (window as any).__rookeryHydrated === true);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill('wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('Unauthorized');
});

test('an administrator signs in, sees every page, and backs up a database', async ({ page }) => {
  await signIn(page, 'admin', 'admin-pw');
  await expect(page.getByRole('table', { name: 'Databases' })).toContainText('Secure');
  await expect(page.locator('.identity')).toContainText('admin');
  await expect(page.getByRole('link', { name: 'Backup' })).toBeVisible();
  // A backup through the studio's own REST calls (session cookie + CSRF token).
  await page.goto(`${base}/studio/backup?db=Secure`);
  await page.waitForFunction(() => (window as any).__rookeryHydrated === true);
  await page.getByLabel('Database', { exact: true }).selectOption('Secure');
  await page.getByLabel('Backup location').fill(path.join(root, 'backups'));
  await page.getByRole('button', { name: 'Start Backup' }).click();
  await expect(async () => {
    const r = await fetch(`${base}/databases/Secure/docs/Raven/Backup/Status`, { headers: { Authorization: basic('admin', 'admin-pw') } });
    const status = await r.json();
    expect(status.Success).toBe(true);
  }).toPass({ timeout: 20_000 });
  // Signing out ends the session.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/studio\/login/);
  await page.goto(`${base}/studio/databases`);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
});

test('a read-only user cannot see or use the Backup page', async ({ page }) => {
  await signIn(page, 'viewer', 'viewer-pw');
  await expect(page.getByRole('table', { name: 'Databases' })).toContainText('Secure');
  await expect(page.getByRole('link', { name: 'Backup' })).toHaveCount(0);
  await expect(page.getByRole('link', { name: 'Restore' })).toHaveCount(0);
  await page.goto(`${base}/studio/backup`);
  await expect(page.getByRole('heading', { name: 'Forbidden' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Start Backup' })).toHaveCount(0);
});
