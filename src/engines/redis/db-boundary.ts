// Limits the agent holds beyond the roles, which scripts (running inside the server) could get past.

export const STANDALONE_SCRIPT_LIMIT =
  "on a standalone server the agent holds the session to its Database's DB number, which SELECT inside a script would leave";
