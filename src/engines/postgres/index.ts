// Engine registration; the postgres engine module is being built (see its issue).
export {};
