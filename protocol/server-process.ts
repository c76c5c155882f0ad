// How the language server's Node process is started: one set of flags for the editor's client and for the tools that
// drive the server (bench, eval, tests), so what they measure is what users run.

/**
 * Young-generation semi-spaces of 4 MB instead of Node's default: a keystroke's garbage (snapshots, arrays of
 * log-probabilities) dies young, and larger spaces only keep it longer in resident memory. The README gives what it
 * saves and what it costs in latency.
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=4'];
