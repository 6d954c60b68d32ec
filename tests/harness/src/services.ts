import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type ServiceName = 'gateway' | 'dispatcher' | 'admin';

/**
 * The built entry point of a service, `services/<name>/dist/main.js`, for tests that run it as a
 * process (tests in this process run the sources). Throws when it has not been built.
 */
export function serviceMain(name: ServiceName): string {
  // this file sits two levels under the repository root, as src/ or as dist/
  const main = fileURLToPath(new URL(`../../../services/${name}/dist/main.js`, import.meta.url));
  if (!existsSync(main)) throw new Error(`services/${name}/dist/main.js is missing: run "npm run build" first`);
  return main;
}
