import { existsSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { accessibilityViolations, launchBrowser, screenshot } from '../src/browser.js';

describe('browser helpers', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('axe reports an unlabelled input, a nameless button and low contrast, and nothing on a sound page', async () => {
    const page = await browser.newPage();
    await page.setContent(`<!doctype html><html lang="en"><head><title>t</title></head><body><main>
      <h1>Bad</h1><input id="q"><button></button><p style="color:#bbb;background:#fff">faint text</p></main></body></html>`);
    const rules = (await accessibilityViolations(page)).map((v) => v.rule).sort();
    expect(rules).toEqual(expect.arrayContaining(['button-name', 'color-contrast', 'label']));

    await page.setContent(`<!doctype html><html lang="en"><head><title>t</title></head><body><main>
      <h1>Good</h1><label for="q">Query</label><input id="q"><button>Search</button><p>plain text</p></main></body></html>`);
    expect(await accessibilityViolations(page)).toEqual([]);
    await page.close();
  });

  it('writes screenshots under reports/screenshots', async () => {
    const page = await browser.newPage();
    await page.setContent('<p>hello</p>');
    const path = await screenshot(page, 'testkit-browser-helper');
    expect(path).toMatch(/reports\/screenshots\/testkit-browser-helper\.png$/);
    expect(existsSync(path)).toBe(true);
    rmSync(path);
    await page.close();
  });
});
