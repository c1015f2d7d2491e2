// Engine registration; the redis engine module is being built (see its issue).
export {};
