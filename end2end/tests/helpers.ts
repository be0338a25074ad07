import { expect, Page, APIRequestContext } from '@playwright/test';
import { ChildProcess } from 'child_process';
import * as fs from 'fs';

/** Waits until the studio has hydrated (the WASM bundle is running). */
export async function hydrated(page: Page) {
  await page.waitForFunction(() => (window as any).__rookeryHydrated === true, null, { timeout: 30_000 });
}

/** Opens a studio page and waits for hydration. */
export async function open(page: Page, path: string) {
  await page.goto(path);
  await hydrated(page);
}

/** A unique name for this run. */
export function unique(prefix: string) {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1000)}`;
}

/** Creates a database through the REST API. */
export async function createDatabase(request: APIRequestContext, name: string) {
  const r = await request.put(`/admin/databases/${name}`);
  expect(r.status()).toBe(201);
}

/** Puts a document through the REST API. */
export async function putDocument(request: APIRequestContext, db: string, id: string, body: object) {
  const r = await request.put(`/databases/${db}/docs/${id}`, { data: body });
  expect([200, 201]).toContain(r.status());
}

/** Stops a spec's own server (waiting for it to exit) and removes the folder the spec made for it. */
export async function stopAndRemove(server: ChildProcess | undefined, folder: string) {
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGKILL');
    await exited;
  }
  if (folder) fs.rmSync(folder, { recursive: true, force: true });
}
