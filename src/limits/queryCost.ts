import {
  getArgumentValues,
  getDirectiveValues,
  getNamedType,
  getNullableType,
  GraphQLIncludeDirective,
  GraphQLSkipDirective,
  isCompositeType,
  isListType,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from "graphql";

export interface CostSettings {
  /** Largest `first`/`last`. */
  maxPageSize: number;
  /** Assumed length of a list of objects that takes no `first`/`last`. */
  defaultListSize: number;
  /** Weight of each root mutation field. */
  mutationCost: number;
}

/** The document asks for a page the API never serves: refused before anything runs. */
export class PageSizeError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * What an operation will cost, from its document alone, before execution: the number of objects it
 * can return. An object field costs 1 per parent object; a list of objects costs one per element,
 * its length being its `first`/`last` (or the default for lists without one); the lists directly
 * under a paged field (a connection's `nodes` and `edges`) take that field's page size. Scalars are
 * free; root mutation fields weigh `mutationCost`. Fragments are counted where spread (every type
 * condition, which can only over-estimate; each fragment is walked once per page size and weight,
 * so the work is linear in the document), `@skip`/`@include` are honoured, introspection is free.
 *
 * Every `first`/`last` must be 1..maxPageSize, or PageSizeError: the schema already requires `first`
 * on every connection, so the cost is always known.
 */
export function operationCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> | null | undefined,
  settings: CostSettings,
): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const vars = variables ?? {};
  const root =
    operation.operation === "query" ? schema.getQueryType() : operation.operation === "mutation" ? schema.getMutationType() : schema.getSubscriptionType();
  if (!root) return 0;

  const included = (node: { directives?: readonly import("graphql").DirectiveNode[] }) => {
    if (!node.directives?.length) return true;
    try {
      if (getDirectiveValues(GraphQLSkipDirective, node, vars)?.if === true) return false;
      if (getDirectiveValues(GraphQLIncludeDirective, node, vars)?.if === false) return false;
    } catch {
      // A bad variable: execution refuses it; count the selection.
    }
    return true;
  };

  function pageSizeOf(field: GraphQLField<unknown, unknown>, node: import("graphql").FieldNode, path: string): number | undefined {
    const paged = field.args.some((a) => a.name === "first" || a.name === "last");
    if (!paged) return undefined;
    let args: Record<string, unknown>;
    try {
      args = getArgumentValues(field, node, vars);
    } catch {
      // Variables that do not coerce: execution refuses them before any resolver runs.
      return settings.maxPageSize;
    }
    const size = args.first ?? args.last;
    if (size === undefined || size === null) throw new PageSizeError(path, `${path}: first or last is required (1-${settings.maxPageSize})`);
    if (typeof size !== "number" || !Number.isInteger(size) || size < 1 || size > settings.maxPageSize) {
      throw new PageSizeError(path, `${path}: first/last must be between 1 and ${settings.maxPageSize}`);
    }
    return size;
  }

  function walk(
    selectionSet: SelectionSetNode,
    parent: GraphQLCompositeType,
    instances: number,
    inheritedPage: number | undefined,
    weight: number,
    path: string,
    depth: number,
  ): number {
    if (depth > 64) return 0; // validation bounds depth long before this
    let cost = 0;
    for (const selection of selectionSet.selections) {
      if (!included(selection)) continue;
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name.startsWith("__") || !("getFields" in parent)) continue;
        const field = (parent as { getFields(): Record<string, GraphQLField<unknown, unknown>> }).getFields()[name];
        if (!field) continue;
        const type = getNamedType(field.type);
        if (!selection.selectionSet || !isCompositeType(type)) {
          // A scalar costs nothing, except as a root mutation field (the write is the cost).
          if (weight > 1) cost += instances * weight;
          continue;
        }
        const fieldPath = `${path}${path ? "." : ""}${selection.alias?.value ?? name}`;
        const page = pageSizeOf(field, selection, fieldPath);
        const list = isListType(getNullableType(field.type));
        const count = list ? instances * (page ?? inheritedPage ?? settings.defaultListSize) : instances;
        cost += count * weight;
        // A paged object (a connection) hands its page size to the lists right under it.
        cost += walk(selection.selectionSet, type, count, list ? undefined : page, 1, fieldPath, depth + 1);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? (schema.getType(selection.typeCondition.name.value) as GraphQLCompositeType | undefined) : parent;
        if (type) cost += walk(selection.selectionSet, type, instances, inheritedPage, weight, path, depth + 1);
      } else {
        cost += instances * fragmentUnitCost(selection.name.value, inheritedPage, weight, path, depth);
      }
    }
    return cost;
  }

  // A fragment's cost is the same wherever it is spread with the same page size and weight, per
  // object it is spread on (walk is linear in `instances`): computed once, then multiplied. Without
  // this, k spreads of a fragment that spreads another k times... cost k^levels walks: a 3 KB document
  // (k = 120, four levels) held the event loop for 25 s. Now the walk is linear in the document.
  const unitCosts = new Map<string, number>();
  function fragmentUnitCost(name: string, inheritedPage: number | undefined, weight: number, path: string, depth: number): number {
    const key = `${name}\0${inheritedPage ?? ""}\0${weight}`;
    const known = unitCosts.get(key);
    if (known !== undefined) return known;
    const fragment = fragments.get(name);
    const type = fragment && (schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType | undefined);
    // A cycle (refused by validation before costs are asked for) counts nothing rather than recursing.
    unitCosts.set(key, 0);
    const unit = fragment && type ? walk(fragment.selectionSet, type, 1, inheritedPage, weight, path, depth + 1) : 0;
    unitCosts.set(key, unit);
    return unit;
  }

  return walk(operation.selectionSet, root, 1, undefined, operation.operation === "mutation" ? settings.mutationCost : 1, "", 0);
}
