import { TypeGuard, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';

const INTEGER = /^-?[0-9]{1,15}$/;
const NUMBER = /^-?[0-9]{1,15}(\.[0-9]{1,15})?$/;

/**
 * Turns the strings of a querystring or path into the types their schema names, strictly:
 * `limit=1.5`, `limit=1e2` or `limit=0x10` stay strings and fail validation, where TypeBox's
 * lenient conversion would read them as 1, 1 and 16.
 */
function convert(schema: TSchema, value: unknown): unknown {
  if (!TypeGuard.IsObject(schema) || typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, property] of Object.entries(schema.properties)) {
    const raw = out[key];
    if (typeof raw !== 'string') continue;
    if (TypeGuard.IsInteger(property) && INTEGER.test(raw)) out[key] = Number(raw);
    else if (TypeGuard.IsNumber(property) && NUMBER.test(raw)) out[key] = Number(raw);
    else if (TypeGuard.IsBoolean(property) && (raw === 'true' || raw === 'false')) out[key] = raw === 'true';
  }
  return out;
}

/**
 * Fastify's validator for the TypeBox schemas: compiled once per route and part; bodies are
 * checked as sent, querystrings and params converted first. Each error names the path and
 * what was expected.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = TypeCompiler.Compile(schema);
  return (input) => {
    const value = httpPart === 'body' ? input : convert(schema, input);
    if (check.Check(value)) return { value };
    const error = [...check.Errors(value)].slice(0, 10).map(
      (e): FastifySchemaValidationError => ({
        keyword: 'schema',
        instancePath: e.path,
        schemaPath: '',
        params: {},
        message: e.message,
      }),
    );
    return { error };
  };
};
