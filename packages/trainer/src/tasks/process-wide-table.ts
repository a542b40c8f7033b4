/**
 * A name → value table that hangs off globalThis under `Symbol.for(key)`, so that a plugin importing its own
 * copy of @moerl/trainer registers where the CLI's copy reads. Returns the getter of the table; on its first
 * call, this copy adds the built-ins the table lacks (never replacing).
 */
export function processWideTable<V>(
  key: string,
  builtIns: readonly (readonly [string, V])[],
): () => Map<string, V> {
  const symbol = Symbol.for(key);
  let builtInsAdded = false;
  return () => {
    const holder = globalThis as { [symbol]?: Map<string, V> };
    holder[symbol] ??= new Map();
    const table = holder[symbol];
    if (!builtInsAdded) {
      for (const [name, value] of builtIns) if (!table.has(name)) table.set(name, value);
      builtInsAdded = true;
    }
    return table;
  };
}
