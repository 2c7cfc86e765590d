import { z } from "zod";

/** A domain event as decided: its type and its data. The store adds envelope, sequence and hashes. */
export interface DomainEvent<T extends string = string, D = Record<string, unknown>> {
  type: T;
  data: D;
}

export interface EventDefinition<T extends string, S extends z.ZodType<Record<string, unknown>>> {
  type: T;
  schemaVersion: number;
  schema: S;
  /** Builds a validated event; the only way domain code creates events. */
  (data: z.input<S>): DomainEvent<T, z.output<S>>;
}

/**
 * Declares an event type with its zod schema and schema version. Add fields as optional and bump
 * the schema version; never change what an existing field means.
 */
export function defineEvent<T extends string, S extends z.ZodType<Record<string, unknown>>>(type: T, schemaVersion: number, schema: S): EventDefinition<T, S> {
  const create = ((data: z.input<S>) => ({ type, data: schema.parse(data) })) as EventDefinition<T, S>;
  return Object.assign(create, { type, schemaVersion, schema });
}

export type EventOf<D> = D extends EventDefinition<infer T, infer S> ? DomainEvent<T, z.output<S>> : never;

export const isoTime = z.string().datetime({ offset: true });
export const roleSchema = z.enum(["viewer", "editor", "admin", "service", "platform"]);
export type Role = z.infer<typeof roleSchema>;
export const tokenKindSchema = z.enum(["user", "service", "agent", "platform"]);
export type TokenKind = z.infer<typeof tokenKindSchema>;
