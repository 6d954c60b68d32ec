import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/** Thrown at start when the environment is invalid; the message names the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`Invalid configuration: ${variable} ${message}`);
  }
}

export type Env = Record<string, string | undefined>;

/**
 * Reads the variables a schema names from `env`, applies defaults, converts strings to the
 * schema's types and checks them. Empty strings count as unset.
 */
export function parseEnv<P extends TProperties>(schema: TObject<P>, env: Env): Static<TObject<P>> {
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const raw = env[key];
    if (raw !== undefined && raw.trim() !== '') picked[key] = raw.trim();
  }
  const value = Value.Convert(schema, Value.Default(schema, picked));
  const first = Value.Errors(schema, value).First();
  if (first) {
    const variable = first.path.split('/')[1] ?? '(environment)';
    throw new ConfigError(variable, `${first.message}${shownValue(variable, picked[variable])}`);
  }
  return value as Static<TObject<P>>;
}

/** Variables whose values are never shown, whatever they hold. */
const SECRET_NAME = /SECRET|KEY|PASSWORD|TOKEN/i;

/**
 * ` (got "…")` for an error message about `variable`, or nothing for a secret-named variable.
 * Credentials inside the value are hidden by {@link redactCredentials}.
 */
export function shownValue(variable: string, value: unknown): string {
  if (typeof value !== 'string' || SECRET_NAME.test(variable)) return '';
  return ` (got "${redactCredentials(value)}")`;
}

/** `scheme:/` or `scheme://` at the start of a value (`user:pw@…` has no scheme). */
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/{1,2}/;

/**
 * A value safe to echo: everything between a URL's scheme and the last `@` (the userinfo:
 * user name and password) becomes `***`. Works on malformed URLs too, which is when the value
 * gets echoed: `redis//:pw@host` → `***@host`, `redis://u:p@ss@host:x` → `redis://***@host:x`.
 */
export function redactCredentials(value: string): string {
  const at = value.lastIndexOf('@');
  if (at < 0) return value;
  const scheme = SCHEME.exec(value)?.[0] ?? '';
  if (at < scheme.length) return value;
  return `${scheme}***${value.slice(at)}`;
}

export const Port = (def: number) => Type.Integer({ minimum: 0, maximum: 65535, default: def });
export const PositiveInt = (def: number, minimum = 1) => Type.Integer({ minimum, default: def });
export const Bool = (def: boolean) => Type.Boolean({ default: def });

/** Splits a comma-separated variable into trimmed, non-empty items. */
export function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
