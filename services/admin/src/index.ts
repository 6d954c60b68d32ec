export { buildAdmin, type AdminDeps } from './app.js';
export { ADMIN_ERROR_CODES, AdminError, type AdminErrorBody, type AdminErrorCode } from './errors.js';
export { ADMIN_ROLE, type AdminPrincipal } from './plugins/app/auth.js';
export * as schemas from './schemas.js';
