import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// the bundler under vitest's own build tool: bundling is how browsers get the SDK
import { rolldown, type RolldownLog } from 'rolldown';

const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url));

async function bundleForBrowser(input: string): Promise<{ code: string; imports: string[]; warnings: RolldownLog[] }> {
  const warnings: RolldownLog[] = [];
  const bundle = await rolldown({ input, platform: 'browser', onLog: (level, log) => level === 'warn' && warnings.push(log) });
  try {
    const { output } = await bundle.generate({ format: 'esm' });
    const [chunk] = output;
    if (chunk?.type !== 'chunk') throw new Error('no chunk');
    return { code: chunk.code, imports: chunk.imports, warnings };
  } finally {
    await bundle.close();
  }
}

describe('browser bundle', () => {
  it('bundles with its dependencies for the browser, with no Node module left to resolve', async () => {
    const { code, imports, warnings } = await bundleForBrowser(entry);
    expect(warnings.map((w) => w.message)).toEqual([]);
    expect(imports).toEqual([]);
    expect(code).not.toMatch(/\brequire\(|from ["']node:/);
    // only the protocol's types are used: its runtime (schemas, validators) stays out
    expect(code).not.toMatch(/typebox|TypeCompiler/i);
    expect(code).toContain('createClient');
  });
});
