import { defineConfig } from '@playwright/test';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// A real server on a throw-away data directory, built by `cargo leptos build`.
const port = Number(process.env.ROOKERY_E2E_PORT ?? 3217);
// Every Playwright process loads this file; the first (the runner) makes
// the two folders, hands them to its workers through the environment, and
// removes them when it exits: only folders it made itself.
const owner = process.env.ROOKERY_E2E_DATA === undefined;
if (owner) {
  process.env.ROOKERY_E2E_DATA = fs.mkdtempSync(path.join(os.tmpdir(), 'rookery-e2e-'));
  process.env.ROOKERY_E2E_BACKUPS = fs.mkdtempSync(path.join(os.tmpdir(), 'rookery-e2e-backups-'));
  const made = [process.env.ROOKERY_E2E_DATA, process.env.ROOKERY_E2E_BACKUPS];
  process.on('exit', () => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));
}
// The data directory inside the folder made, so that the master key file
// the server writes beside it (rookery-master.key) goes with the folder.
const dataDir = path.join(process.env.ROOKERY_E2E_DATA as string, 'data');
export const backupRoot = process.env.ROOKERY_E2E_BACKUPS as string;
const repo = path.resolve(__dirname, '..');
// A real S3 server (moto, from PyPI; `make test` installs it into .tools/venv) for object storage backups.
const python = process.env.ROOKERY_TEST_PYTHON ?? `${repo}/.tools/venv/bin/python3`;
const s3Port = Number(process.env.ROOKERY_E2E_S3_PORT ?? 3223);
export const s3Endpoint = `http://127.0.0.1:${s3Port}`;
process.env.ROOKERY_E2E_S3 = s3Endpoint;

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: process.env.CI ? [['list']] : [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  webServer: [
    {
      command: `${python} -m moto.server -H 127.0.0.1 -p ${s3Port}`,
      url: `${s3Endpoint}/moto-api/`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: 'ignore',
      stderr: 'ignore',
    },
    {
      // Backups may go under the temp folder (the default root) and to the bucket rookery-e2e.
      command: `${repo}/target/debug/rookery-server --data-dir ${dataDir} --bind 127.0.0.1:${port} --durability os --backup-root ${os.tmpdir()} --backup-root s3://rookery-e2e`,
      env: {
        LEPTOS_SITE_ROOT: `${repo}/target/site`,
        RUST_LOG: 'warn',
        AWS_ENDPOINT_URL: s3Endpoint,
        AWS_ALLOW_HTTP: 'true',
        AWS_ACCESS_KEY_ID: 'rookery-e2e',
        AWS_SECRET_ACCESS_KEY: 'rookery-e2e-secret',
        AWS_REGION: 'us-east-1',
      },
      url: `http://127.0.0.1:${port}/health`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: 'ignore',
      stderr: 'pipe',
    },
  ],
});
