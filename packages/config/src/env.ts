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
    const got = picked[variable];
    const shown = typeof got === 'string' && !/SECRET|KEY|PASSWORD|TOKEN/i.test(variable) ? ` (got "${got}")` : '';
    throw new ConfigError(variable, `${first.message}${shown}`);
  }
  return value as Static<TObject<P>>;
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
